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
// Txn, a compacted revision): the same on every member, and nothing
// changed.
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
		case errors.Is(err, mvcc.ErrFailed):
			return nil, err // the engine's: stop the node
		case err != nil:
			res[i] = err
		default:
			res[i] = r
		}
	}
	return res, nil
}

// Restored implements Restorer: the store reloads from the snapshot.
func (m MVCCMachine) Restored(*quiver.DB) error { return m.Store.Reload() }
