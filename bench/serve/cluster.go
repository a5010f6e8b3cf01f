package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// cluster is n members of one engine, each in a child process of this
// program, on 127.0.0.1.
type cluster struct {
	engine string
	specs  []memberSpec
	procs  []*exec.Cmd     // nil: stopped
	exited []chan struct{} // closed when procs[i] has exited
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// etcdBinaries maps the engines that are etcd server binaries (-etcd-bin)
// to their paths.
var etcdBinaries = map[string]string{}

// startCluster starts n members of engine with their data under dir.
func startCluster(engine string, n int, dir string, quota int64) (*cluster, error) {
	c := &cluster{engine: engine}
	var parts []string
	for i := 1; i <= n; i++ {
		client, err := freeAddr()
		if err != nil {
			return nil, err
		}
		peer, err := freeAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("m%d", i)
		c.specs = append(c.specs, memberSpec{Engine: engine, Name: name, Dir: filepath.Join(dir, engine+"-"+name),
			Client: client, Peer: peer, Token: fmt.Sprintf("bench-%s-%d", engine, time.Now().UnixNano()), QuotaBackendBytes: quota,
			Binary: etcdBinaries[engine]})
		parts = append(parts, name+"=http://"+peer)
	}
	token := c.specs[0].Token
	for i := range c.specs {
		c.specs[i].Cluster, c.specs[i].Token = strings.Join(parts, ","), token
	}
	c.procs = make([]*exec.Cmd, n)
	c.exited = make([]chan struct{}, n)
	// Members of a new cluster wait for each other: start them all, then
	// wait for each to serve.
	ready := make([]chan bool, n)
	for i := range c.specs {
		r, err := c.spawn(i)
		if err != nil {
			c.stop()
			return nil, err
		}
		ready[i] = r
	}
	for i, r := range ready {
		select {
		case ok := <-r:
			if !ok {
				c.stop()
				return nil, fmt.Errorf("%s member %s exited before it served", engine, c.specs[i].Name)
			}
		case <-time.After(60 * time.Second):
			c.stop()
			return nil, fmt.Errorf("%s member %s did not serve in 60 s", engine, c.specs[i].Name)
		}
	}
	return c, nil
}

// spawn starts member i's process; the channel says whether it served.
func (c *cluster) spawn(i int) (chan bool, error) {
	if c.specs[i].Binary != "" {
		return c.spawnBinary(i)
	}
	raw, err := json.Marshal(c.specs[i])
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memberEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.procs[i] = cmd
	done := make(chan struct{})
	c.exited[i] = done
	ready := make(chan bool, 1)
	go func() {
		// The pipe is read to its end before Wait, which closes it.
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if sc.Text() == "READY" && !said {
				ready <- true
				said = true
			}
		}
		close(ready)
		_ = cmd.Wait()
		close(done)
	}()
	return ready, nil
}

// spawnBinary starts member i from its etcd binary, its output going to
// a log beside its data; the channel says whether it served (answered
// Status), checked every 100 ms for a minute.
func (c *cluster) spawnBinary(i int) (chan bool, error) {
	spec := c.specs[i]
	log, err := os.OpenFile(spec.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.Binary, etcdFlags(spec)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	c.procs[i] = cmd
	exited := make(chan struct{})
	c.exited[i] = exited
	go func() { _ = cmd.Wait(); log.Close(); close(exited) }()
	ready := make(chan bool, 1)
	go func() {
		defer close(ready)
		cli, err := newClient(spec.Client)
		if err != nil {
			return
		}
		defer cli.Close()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case <-exited:
				return
			case <-time.After(100 * time.Millisecond):
			}
			x, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := cli.Status(x, spec.Client)
			cancel()
			if err == nil {
				ready <- true
				return
			}
		}
	}()
	return ready, nil
}

// kill stops member i with SIGKILL, through its os.Process (which
// signals no other process once the member's has been waited for).
func (c *cluster) kill(i int) {
	if p := c.procs[i]; p != nil {
		_ = p.Process.Kill()
		<-c.exited[i]
		c.procs[i] = nil
	}
}

// stop stops every member: SIGTERM, then SIGKILL after 10 s.
func (c *cluster) stop() {
	for i, p := range c.procs {
		if p == nil {
			continue
		}
		_ = p.Process.Signal(syscall.SIGTERM)
		done := c.exited[i]
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
		c.procs[i] = nil
	}
}

// removeData removes the members' data directories (their logs stay).
func (c *cluster) removeData() {
	for _, s := range c.specs {
		_ = os.RemoveAll(s.Dir)
	}
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, s := range c.specs {
		eps = append(eps, s.Client)
	}
	return eps
}

func newClient(eps ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 4 << 20})
}

// leader returns the index of the member that leads, waiting up to 30 s.
func (c *cluster) leader(cli *clientv3.Client) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range c.specs {
			if c.procs[i] == nil {
				continue
			}
			x, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(x, s.Client)
			cancel()
			if err == nil && st.Leader == st.Header.MemberId {
				return i, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no leader in 30 s", c.engine)
}
