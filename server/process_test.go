package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestServeChild is a member run by TestServeKilled in a child process,
// as `quiver serve` runs it; on its own it does nothing.
func TestServeChild(t *testing.T) {
	raw := os.Getenv("QUIVER_SERVE_CHILD")
	if raw == "" {
		t.Skip("run by TestServeKilled")
	}
	var cfg MemberConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Ready = func(client, _ []string) { fmt.Printf("READY %s\n", client[0]) }
	if err := Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		os.Exit(1)
	}
}

// procCluster is three members in their own processes (TestServeChild,
// the server as `quiver serve` runs it) on 127.0.0.1; the test kills them
// with SIGKILL by their pid and starts them again on their data.
type procCluster struct {
	t          *testing.T
	dir        string
	names      []string
	peer       map[string]string
	clientAddr map[string]string
	cluster    []string

	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

func newProcCluster(t *testing.T) *procCluster {
	c := &procCluster{t: t, dir: t.TempDir(), names: []string{"m1", "m2", "m3"},
		peer: map[string]string{}, clientAddr: map[string]string{}, procs: map[string]*exec.Cmd{}}
	for _, n := range c.names {
		c.peer[n], c.clientAddr[n] = testutil.FreeAddr(t), testutil.FreeAddr(t)
		c.cluster = append(c.cluster, n+"=http://"+c.peer[n])
	}
	t.Cleanup(func() {
		for _, n := range c.names {
			c.kill(n)
		}
	})
	for _, n := range c.names {
		c.start(n)
	}
	return c
}

// addrs are the members' client addresses.
func (c *procCluster) addrs() []string {
	var all []string
	for _, n := range c.names {
		all = append(all, c.clientAddr[n])
	}
	return all
}

// start starts member n and waits until it listens.
func (c *procCluster) start(n string) {
	t := c.t
	cfg := memberConfig(c.dir, "http", n, DefaultMemberConfig().InitialClusterToken, strings.Join(c.cluster, ","), c.peer[n], c.clientAddr[n])
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "QUIVER_SERVE_CHILD="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("member %s exited before it served", n)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("member %s did not serve in 30 s", n)
	}
	c.mu.Lock()
	c.procs[n] = cmd
	c.mu.Unlock()
}

// kill kills member n's process, if it runs, with SIGKILL.
func (c *procCluster) kill(n string) {
	c.mu.Lock()
	cmd := c.procs[n]
	delete(c.procs, n)
	c.mu.Unlock()
	if cmd != nil {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

// leader is the member that leads, as the members' status says, waiting
// up to 30 s for one.
func (c *procCluster) leader(cli *clientv3.Client) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.names {
			x, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(x, c.clientAddr[n])
			cancel()
			if err == nil && st.Leader == st.Header.MemberId {
				return n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("no leader in 30 s")
	return ""
}

// TestServeKilled: three members in their own processes (the server as
// `quiver serve` runs it) take puts from clientv3 clients through every
// member while members are killed with SIGKILL, by their pid, and
// restarted, the leader at least once; every acknowledged put reads back
// through a linearizable get afterwards, and the members agree on HashKV.
// QUIVER_KILL_CYCLES sets the cycles (default 3, 1 with -short).
func TestServeKilled(t *testing.T) {
	cycles := testutil.KillCycles(3)
	if testing.Short() {
		cycles = 1
	}
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	c := newProcCluster(t)
	names, clientAddr := c.names, c.clientAddr
	cli := client(t, c.addrs()...)

	acked := map[string]string{}
	var amu sync.Mutex
	for cycle := 0; cycle < cycles; cycle++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				one := client(t, clientAddr[names[g%3]])
				for i := 0; i < 100000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("c%d/g%d/%d", cycle, g, i)
					c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := one.Put(c, k, k)
					cancel()
					if err == nil {
						amu.Lock()
						acked[k] = k
						amu.Unlock()
					}
				}
			}()
		}
		// Kill the leader in the first cycle, anyone after.
		victim := names[r.IntN(3)]
		if cycle == 0 {
			victim = c.leader(cli)
		}
		time.Sleep(time.Duration(200+r.IntN(400)) * time.Millisecond)
		c.kill(victim)
		time.Sleep(time.Duration(200+r.IntN(400)) * time.Millisecond)
		c.start(victim)
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("cycle %d: killed %s; %d puts acknowledged so far", cycle, victim, len(acked))
	}

	// Every acknowledged put is there, read linearizably through any member.
	x := ctx(t)
	i := 0
	for k, v := range acked {
		i++
		one := clientv3.NewKV(cli)
		var g *clientv3.GetResponse
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if g, err = one.Get(x, k); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != v {
			t.Fatalf("acknowledged put %s is missing after the kills: %v, %v", k, g, err)
		}
	}
	// The members agree on the contents at one revision.
	rev := must[*clientv3.GetResponse](t)(cli.Get(x, "c0/")).Header.Revision
	var hash uint32
	for _, n := range names {
		var h *clientv3.HashKVResponse
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			if h, err = cli.HashKV(x, clientAddr[n], rev); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // a member still catching up
		}
		if err != nil {
			t.Fatal(err)
		}
		if hash != 0 && h.Hash != hash {
			t.Fatalf("member %s: HashKV %08x at %d, another %08x", n, h.Hash, rev, hash)
		}
		hash = h.Hash
	}
	t.Logf("%d acknowledged puts all present; HashKV %08x at revision %d on every member", len(acked), hash, rev)
}
