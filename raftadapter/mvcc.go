package raftadapter

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
)

// MVCCMachine replicates an mvcc.Store: each entry is one mvcc.Txn
// (EncodeTxn), run with Store.TxnIn in the node's transaction, so every
// member gets the same revisions and the same HashKV. The store must take
// no writes of its own. Propose's result for an entry is its
// *mvcc.TxnResult, or the error that refused it (an invalid or undecodable
// Txn, a revision out of range): the same on every member, and nothing
// changed. Any other error stops the node. Store.Compact refuses on a
// replicated store: compaction must go through the log too (Store.CompactIn
// in the apply of an entry of one's own, as package server does), so that
// every member compacts at the same revision.
type MVCCMachine struct {
	Store *mvcc.Store
}

var (
	_ StateMachine = MVCCMachine{}
	_ Restorer     = MVCCMachine{}
)

// EncodeTxn encodes t as the data of an entry for MVCCMachine.
func EncodeTxn(t *mvcc.Txn) ([]byte, error) { return json.Marshal(t) }

// DecodeTxn decodes an entry's data made by EncodeTxn.
func DecodeTxn(data []byte) (*mvcc.Txn, error) {
	t := &mvcc.Txn{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("raftadapter: an entry that is not an mvcc transaction: %w", err)
	}
	return t, nil
}

// Apply implements StateMachine.
func (m MVCCMachine) Apply(tx *quiver.Tx, ents []Entry) ([]any, error) {
	res := make([]any, len(ents))
	for i, e := range ents {
		t, err := DecodeTxn(e.Data)
		if err != nil {
			res[i] = err
			continue
		}
		r, err := m.Store.TxnIn(tx, t)
		switch {
		case err == nil:
			res[i] = r
		case refusal(err):
			res[i] = err
		default:
			// The member's own trouble (a closed or failed store, damaged
			// data): carrying on would skip the entry here and nowhere
			// else. Stop the node; the entry is applied after a restart.
			return nil, err
		}
	}
	return res, nil
}

// refusal reports whether err is a Txn's own refusal: given by every
// member alike for the same entry, since it depends only on the Txn and
// the replicated state.
func refusal(err error) bool {
	for _, e := range []error{mvcc.ErrEmptyKey, mvcc.ErrInvalidRange, mvcc.ErrDuplicateKey, mvcc.ErrTooManyOps,
		mvcc.ErrCompacted, mvcc.ErrFutureRev, quiver.ErrValueTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Restored implements Restorer: the store reloads from the snapshot.
func (m MVCCMachine) Restored(*quiver.DB) error { return m.Store.Reload() }
