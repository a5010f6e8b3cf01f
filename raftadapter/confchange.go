package raftadapter

import (
	"fmt"

	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// checkConfChange reports whether raft can apply cc to configuration cs:
// raft's ApplyConfChange panics on a change it cannot make (removing the
// last voter, promoting a member that is no learner, leaving a joint
// configuration it is not in), and a committed entry must not stop the
// process. The check is raft's own validation, run on a copy.
func checkConfChange(cs *pb.ConfState, cc pb.ConfChangeI) error {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return fmt.Errorf("raftadapter: the configuration %v does not restore: %w", cs, err)
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	v2 := cc.AsV2()
	if v2.LeaveJoint() {
		_, _, err = chg.LeaveJoint()
	} else if autoLeave, ok := v2.EnterJoint(); ok {
		_, _, err = chg.EnterJoint(autoLeave, v2.Changes...)
	} else {
		_, _, err = chg.Simple(v2.Changes...)
	}
	if err != nil {
		return fmt.Errorf("raftadapter: configuration change %s refused: %w", confchange.Describe(v2.Changes...), err)
	}
	return nil
}
