// Package common holds the types of bbolt's internal/common package that
// appear in its public API.
package common

// Pgid is a page id.
type Pgid uint64

// PageInfo describes a page, as Tx.Page returns it.
type PageInfo struct {
	ID            int
	Type          string
	Count         int
	OverflowCount int
}
