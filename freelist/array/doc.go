// Package array is the baseline freelist index: a sorted slice of free page
// ids, allocated first fit by a linear scan. It is what bbolt users know;
// allocation costs O(free pages), which is why freelist/hashmap exists.
package array
