package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// binaries built once by TestMain: etcd on quiver, etcd on bbolt, and
// quiver's CLI.
var bins struct {
	etcdQuiver, etcdBbolt, quiver string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etcdserver-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.etcdQuiver = filepath.Join(dir, "etcd-quiver")
	bins.etcdBbolt = filepath.Join(dir, "etcd-bbolt")
	bins.quiver = filepath.Join(dir, "quiver")
	builds := [][]string{
		{"go", "build", "-o", bins.etcdQuiver, "."},
		{"go", "build", "-modfile=bbolt.mod", "-o", bins.etcdBbolt, "."},
		{"go", "build", "-C", "../..", "-o", bins.quiver, "./cmd/quiver"},
	}
	for _, b := range builds {
		if out, err := exec.Command(b[0], b[1:]...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(b, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// member is one etcd member run as a child process on 127.0.0.1.
type member struct {
	name, dir    string
	client, peer string // host:port
	cmd          *exec.Cmd
	exited       chan struct{}
	log          *os.File
}

// cluster is the members of one cluster and the flags they share.
type cluster struct {
	t       *testing.T
	members []*member
	initial string // --initial-cluster
}

// freeAddr returns a free port on 127.0.0.1 below the ephemeral range
// (32768 and up on Linux), as etcd's own end-to-end tests pick theirs: a
// port the kernel hands out to outgoing connections could be taken, while
// its member is down, by a client reconnecting to it.
func freeAddr(t *testing.T) string {
	t.Helper()
	for try := 0; try < 1000; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port from 20000 to 32000")
	return ""
}

// newCluster names n members with their data under t.TempDir(); none runs
// yet. Every member left running is killed, by its pid, when the test
// ends.
func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t}
	dir := t.TempDir()
	var parts []string
	for i := 1; i <= n; i++ {
		m := &member{name: fmt.Sprintf("m%d", i), dir: filepath.Join(dir, fmt.Sprintf("m%d", i)),
			client: freeAddr(t), peer: freeAddr(t)}
		c.members = append(c.members, m)
		parts = append(parts, m.name+"=http://"+m.peer)
	}
	c.initial = strings.Join(parts, ",")
	t.Cleanup(func() {
		for _, m := range c.members {
			c.kill(m)
		}
	})
	return c
}

// start runs member m from the binary bin. Its output goes to a log file
// beside its data, which fail prints.
func (c *cluster) start(m *member, bin string) {
	c.t.Helper()
	if m.cmd != nil {
		c.t.Fatalf("%s is already running", m.name)
	}
	log, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	m.log = log
	m.cmd = exec.Command(bin,
		"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", "http://"+m.client, "--advertise-client-urls", "http://"+m.client,
		"--listen-peer-urls", "http://"+m.peer, "--initial-advertise-peer-urls", "http://"+m.peer,
		"--initial-cluster", c.initial, "--initial-cluster-token", "quiver-compat",
		"--initial-cluster-state", "new", "--log-level", "warn")
	m.cmd.Stdout, m.cmd.Stderr = log, log
	dieWithParent(m.cmd) // a test binary killed on timeout leaves no member behind
	if err := m.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.exited)
}

// kill stops m with SIGKILL (through its os.Process, which signals no
// other process once m's has been waited for).
func (c *cluster) kill(m *member) {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
	m.log.Close()
}

// stop stops m with SIGTERM, as an operator would, and waits for it.
func (c *cluster) stop(m *member) {
	c.t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s did not stop in 30 s after SIGTERM", m.name)
	}
	c.kill(m)
}

// fail ends the test, printing the tail of every member's log.
func (c *cluster) fail(format string, args ...any) {
	c.t.Helper()
	for _, m := range c.members {
		if b, err := os.ReadFile(m.dir + ".log"); err == nil {
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			c.t.Logf("log of %s (tail):\n%s", m.name, b)
		}
	}
	c.t.Fatalf(format, args...)
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return eps
}

func (c *cluster) client(eps ...string) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitServing waits until every running member answers Status with a
// leader known, or fails after a minute.
func (c *cluster) waitServing(cli *clientv3.Client) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		for {
			select {
			case <-m.exited:
				c.fail("%s exited before it served", m.name)
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.client)
			cancel()
			if err == nil && st.Leader != 0 {
				break
			}
			if time.Now().After(deadline) {
				c.fail("%s does not serve after a minute: %v", m.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// leader returns the member that leads.
func (c *cluster) leader(cli *clientv3.Client) *member {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range c.members {
			if m.cmd == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.client)
			cancel()
			if err == nil && st.Leader == st.Header.MemberId {
				return m
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.fail("no leader in 30 s")
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// kv is what a key holds, as the test compares it across restarts.
type kv struct {
	value                string
	create, mod, version int64
	lease                int64
}

// dump reads every key of the store from one member, linearizably, with
// the store's revision.
func dump(t *testing.T, cli *clientv3.Client) (map[string]kv, int64) {
	t.Helper()
	g, err := cli.Get(ctxT(t), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]kv, len(g.Kvs))
	for _, x := range g.Kvs {
		out[string(x.Key)] = kv{string(x.Value), x.CreateRevision, x.ModRevision, x.Version, x.Lease}
	}
	return out, g.Header.Revision
}
