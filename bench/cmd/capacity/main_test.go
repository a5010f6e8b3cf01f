package main

import (
	"strings"
	"testing"
)

// TestBadFlags checks that bad arguments are refused before any database is
// grown, each with an error naming what is wrong.
func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-hot", "0.1"}, "-hot"},
		{[]string{"-hot", "0,0.9"}, "-hot"},
		{[]string{"-hot", "1,0.9"}, "-hot"},
		{[]string{"-hot", "0.1,x"}, "-hot"},
		{[]string{"-hot", "0.1,1.5"}, "-hot"},
		{[]string{"-sizes", "4,1"}, "ascend"},
		{[]string{"-grow", "slow"}, "-grow"},
		{[]string{"-engines", "nosuch"}, "unknown engine"},
	} {
		err := run(append(c.args, "-progress=false", "-dir", t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q: %v, want an error about %s", c.args, err, c.want)
		}
	}
}
