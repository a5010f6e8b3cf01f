package raftadapter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/raft/v3/raftpb"
)

// The multi-process harness: each member is a child process (this test
// binary running TestRaftChild) with its own database and a TCPTransport
// on 127.0.0.1; the test drives it over a small HTTP control interface on
// 127.0.0.1, and kills it with SIGKILL by its pid.

// childConfig is what a child is started with (JSON in QUIVER_RAFT_CHILD).
type childConfig struct {
	ID           uint64            `json:"id"`
	Dir          string            `json:"dir"`
	Peers        map[uint64]string `json:"peers"` // raft addresses, this member's included
	Join         bool              `json:"join"`
	MemoryBudget int               `json:"memory_budget"`
	LogWindow    int64             `json:"log_window"`
	// WAL gives the member a write-ahead file (Config.WAL) in Dir.
	WAL bool `json:"wal"`
	// Samples, if set, is a CSV file the child appends its memory to
	// every SampleEvery.
	Samples     string        `json:"samples"`
	SampleEvery time.Duration `json:"sample_every"`
}

// childStatus is a child's answer to /status.
type childStatus struct {
	ID, Lead, Applied  uint64
	Keys               int
	Hash               uint64 // of bucket kv: equal on replicas that applied the same entries
	Installed, Sent    int64  // snapshots
	PeakHeap, PeakAnon uint64 // bytes: Go's HeapInuse and RssAnon, highest seen
	RssFile            uint64 // the mapped file, now
}

// TestRaftChild is a cluster member when run by the harness; on its own it
// does nothing.
func TestRaftChild(t *testing.T) {
	raw := os.Getenv("QUIVER_RAFT_CHILD")
	if raw == "" {
		t.Skip("run by the multi-process tests")
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := runChild(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
}

func runChild(cfg childConfig) error {
	db, err := quiver.Open(filepath.Join(cfg.Dir, "member.db"), 0o600, nil)
	if err != nil {
		return err
	}
	peers := map[uint64]string{}
	var ids []uint64
	for id, addr := range cfg.Peers {
		ids = append(ids, id)
		if id != cfg.ID {
			peers[id] = addr
		}
	}
	tr, err := NewTCPTransport(TCPConfig{ID: cfg.ID, ClusterID: testClusterID, Listen: cfg.Peers[cfg.ID], Peers: peers})
	if err != nil {
		return err
	}
	c := Config{ID: cfg.ID, Peers: ids, DB: db, StateMachine: kvMachine{}, Transport: tr, MemoryBudget: cfg.MemoryBudget, LogWindow: cfg.LogWindow, Join: cfg.Join}
	if cfg.Join {
		c.Peers = nil
	}
	if cfg.WAL {
		c.WAL = filepath.Join(cfg.Dir, "raft.wal")
	}
	n, err := StartNode(c)
	if err != nil {
		return err
	}
	tr.Attach(n)
	mem := &memWatch{}
	go mem.run(cfg.Samples, cfg.SampleEvery)

	mux := http.NewServeMux()
	mux.HandleFunc("/propose", func(w http.ResponseWriter, r *http.Request) {
		value, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		idx, err := n.Propose(ctx, append([]byte(r.URL.Query().Get("key")+"="), value...))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, idx)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		var v []byte
		err := n.LinearizableRead(ctx, func(tx *quiver.Tx) error {
			if b := tx.Bucket([]byte("kv")); b != nil {
				v = append([]byte(nil), b.Get([]byte(r.URL.Query().Get("key")))...)
			}
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(v)
	})
	mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		tr.AddPeer(id, r.URL.Query().Get("addr"))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st := childStatus{ID: cfg.ID, Lead: n.Status().Lead, Applied: n.Applied()}
		st.Sent, st.Installed = n.Snapshots()
		st.PeakHeap, st.PeakAnon, st.RssFile = mem.peaks()
		h := xxhash.New()
		_ = n.SerializableRead(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("kv"))
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				st.Keys++
				_, _ = h.Write(k)
				_, _ = h.Write(v)
				return nil
			})
		})
		st.Hash = h.Sum64()
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/conf", func(w http.ResponseWriter, r *http.Request) {
		var cc ccRequest
		if err := json.NewDecoder(r.Body).Decode(&cc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		change, err := cc.change()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := n.ProposeConfChange(ctx, change); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("CONTROL %s\n", ln.Addr())
	return http.Serve(ln, mux) // until the parent kills the process
}

// memWatch samples the process's memory and keeps the peaks.
type memWatch struct {
	mu                sync.Mutex
	heap, anon, file  uint64
	peakHeap, peakAno uint64
}

func (m *memWatch) peaks() (heap, anon, file uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peakHeap, m.peakAno, m.file
}

func (m *memWatch) run(samples string, every time.Duration) {
	if every <= 0 {
		every = 20 * time.Millisecond
	}
	var out *os.File
	if samples != "" {
		out, _ = os.OpenFile(samples, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	start := time.Now()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		anon, file := procRss()
		m.mu.Lock()
		m.heap, m.anon, m.file = ms.HeapInuse, anon, file
		m.peakHeap, m.peakAno = max(m.peakHeap, ms.HeapInuse), max(m.peakAno, anon)
		m.mu.Unlock()
		if out != nil {
			fmt.Fprintf(out, "%.3f,%d,%d,%d\n", time.Since(start).Seconds(), ms.HeapInuse, anon, file)
		}
		time.Sleep(every)
	}
}

// procRss reads RssAnon and RssFile from /proc/self/status, in bytes.
func procRss() (anon, file uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "RssAnon:":
			anon = v << 10
		case "RssFile:":
			file = v << 10
		}
	}
	return anon, file
}

// ccRequest is a membership change sent to a child's /conf.
type ccRequest struct {
	Type string `json:"type"` // "remove", "learner", "voter"
	ID   uint64 `json:"id"`
}

func (c ccRequest) change() (*pb.ConfChangeV2, error) {
	typ, ok := map[string]pb.ConfChangeType{
		"remove":  pb.ConfChangeType_ConfChangeRemoveNode,
		"learner": pb.ConfChangeType_ConfChangeAddLearnerNode,
		"voter":   pb.ConfChangeType_ConfChangeAddNode,
	}[c.Type]
	if !ok {
		return nil, fmt.Errorf("no change of type %q", c.Type)
	}
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: typ.Enum(), NodeId: new(c.ID)}}}, nil
}

// procCluster is the parent's handle on the children.
type procCluster struct {
	t       *testing.T
	dir     string
	peers   map[uint64]string // raft addresses
	base    childConfig       // budget, window, samples
	mu      sync.Mutex
	procs   map[uint64]*exec.Cmd
	control map[uint64]string
}

func newProcCluster(t *testing.T, n int, base childConfig) *procCluster {
	if runtime.GOOS != "linux" {
		t.Skip("the multi-process tests read /proc")
	}
	c := &procCluster{t: t, dir: t.TempDir(), peers: map[uint64]string{}, base: base, procs: map[uint64]*exec.Cmd{}, control: map[uint64]string{}}
	for id := uint64(1); id <= uint64(n); id++ {
		c.peers[id] = testutil.FreeAddr(t)
	}
	t.Cleanup(func() {
		for id := range c.peers {
			c.kill(id)
		}
	})
	for id := range c.peers {
		c.start(id, false)
	}
	return c
}

// start starts member id's process (a restart keeps its directory).
func (c *procCluster) start(id uint64, join bool) {
	c.t.Helper()
	cfg := c.base
	cfg.ID, cfg.Dir, cfg.Peers, cfg.Join = id, filepath.Join(c.dir, fmt.Sprint(id)), c.peers, join
	if cfg.Samples != "" {
		cfg.Samples = fmt.Sprintf("%s.%d.csv", cfg.Samples, id)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRaftChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "QUIVER_RAFT_CHILD="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "CONTROL "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			_ = cmd.Wait()
			c.t.Fatalf("member %d exited before it started", id)
		}
		c.mu.Lock()
		c.procs[id], c.control[id] = cmd, a
		c.mu.Unlock()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		c.t.Fatalf("member %d did not start in 30 s", id)
	}
}

// kill kills member id with SIGKILL, by its pid, and waits for it.
func (c *procCluster) kill(id uint64) {
	c.mu.Lock()
	cmd := c.procs[id]
	delete(c.procs, id)
	delete(c.control, id)
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

func (c *procCluster) running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := range c.procs {
		ids = append(ids, id)
	}
	return ids
}

var procClient = &http.Client{Timeout: 20 * time.Second}

// call sends a request to member id's control interface and returns the
// body of a 200 answer.
func (c *procCluster) call(id uint64, method, path string, body io.Reader) ([]byte, error) {
	c.mu.Lock()
	addr := c.control[id]
	c.mu.Unlock()
	if addr == "" {
		return nil, fmt.Errorf("member %d is not running", id)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := procClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("member %d: %s: %s", id, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func (c *procCluster) status(id uint64) (childStatus, error) {
	var st childStatus
	b, err := c.call(id, "GET", "/status", nil)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

// leader waits for a running member that leads and returns it.
func (c *procCluster) leader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range c.running() {
			if st, err := c.status(id); err == nil && st.Lead == id {
				return id
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader in 30 s")
	return 0
}

// other returns a member that is not id.
func (c *procCluster) other(id uint64) uint64 {
	for m := range c.peers {
		if m != id {
			return m
		}
	}
	c.t.Fatal("a cluster of one")
	return 0
}

// put proposes key=value through member id.
func (c *procCluster) put(id uint64, key string, value []byte) error {
	_, err := c.call(id, "POST", "/propose?key="+url.QueryEscape(key), strings.NewReader(string(value)))
	return err
}

// converge waits until every running member holds the same data, applied
// at least to the leader's applied index, and returns its status.
func (c *procCluster) converge() childStatus {
	c.t.Helper()
	lead := c.leader()
	want, err := c.status(lead)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		same := true
		var sts []childStatus
		for _, id := range c.running() {
			st, err := c.status(id)
			if err != nil || st.Applied < want.Applied {
				same = false
				break
			}
			sts = append(sts, st)
		}
		if same {
			for _, st := range sts[1:] {
				if st.Hash != sts[0].Hash || st.Keys != sts[0].Keys {
					same = false
				}
			}
			if same {
				return sts[0]
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the members did not converge in 60 s: %+v", sts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
