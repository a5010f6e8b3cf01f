package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The model of the linearizability test: etcd's key/value store as its
// clients see it, revisions included, over a few keys and leases.
const (
	linKeys   = 3  // keys per history
	linLeases = 64 // lease slots per history (a bit each in linState)
)

// linState is the model's state: the store's revision, each key's value,
// mod revision and lease slot plus one (0: none), and the leases granted
// and not revoked. A key with mod 0 does not exist (and is linKey{}).
type linState struct {
	rev    int64
	keys   [linKeys]linKey
	leases uint64
}

type linKey struct {
	val   string
	mod   int64
	lease int
}

// linInput is one client call: g(et), p(ut, with lease slot or -1),
// c(ompare-and-swap: put val if key's mod revision is mod, else get),
// d(elete), L (grant lease slot), R (revoke lease slot).
type linInput struct {
	op    byte
	key   int
	val   string
	lease int
	mod   int64
}

// linOutput is what the call returned. unknown: it failed in a way that
// leaves open whether it applied (a timeout, a member killed); refused:
// the store refused it for what it asked (lease not found).
type linOutput struct {
	unknown, refused bool
	rev              int64 // the response header's revision
	val              string
	mod              int64
	ok               bool // a swap succeeded; a delete deleted a key
}

// linEtcdModel is the model of a history that starts at revision rev0,
// with none of its keys and leases. It is nondeterministic: a call of
// unknown outcome leads to the states with and without it.
func linEtcdModel(rev0 int64) porcupine.Model {
	m := linModel
	m.Init = func() []any { return []any{linState{rev: rev0}} }
	return m.ToModel()
}

var linModel = porcupine.NondeterministicModel{
	Step: func(state, input, output any) []any {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		// next is the state after the call applied; changed whether it
		// changed anything (so took a revision).
		next, refused := s, false
		switch in.op {
		case 'g':
			if out.unknown {
				return []any{s}
			}
			k := s.keys[in.key]
			if out.rev == s.rev && out.val == k.val && out.mod == k.mod {
				return []any{s}
			}
			return nil
		case 'p':
			if in.lease >= 0 && s.leases&(1<<in.lease) == 0 {
				refused = true
				break
			}
			next.rev++
			next.keys[in.key] = linKey{val: in.val, mod: next.rev, lease: in.lease + 1}
		case 'c':
			if s.keys[in.key].mod != in.mod {
				if out.unknown || (!out.ok && out.rev == s.rev) {
					return []any{s}
				}
				return nil
			}
			next.rev++
			next.keys[in.key] = linKey{val: in.val, mod: next.rev}
			if !out.unknown && !out.ok {
				return nil
			}
		case 'd':
			if s.keys[in.key].mod == 0 {
				if out.unknown || (!out.ok && out.rev == s.rev) {
					return []any{s}
				}
				return nil
			}
			next.rev++
			next.keys[in.key] = linKey{}
			if !out.unknown && !out.ok {
				return nil
			}
		case 'L':
			if s.leases&(1<<in.lease) != 0 {
				refused = true // granted twice: never asked by the test
				break
			}
			next.leases |= 1 << in.lease
			if !out.unknown && !out.refused {
				return []any{next} // a grant's revision is not checked: it takes none
			}
		case 'R':
			if s.leases&(1<<in.lease) == 0 {
				refused = true
				break
			}
			next.leases &^= 1 << in.lease
			rev := next.rev + 1
			for i, k := range next.keys {
				if k.mod != 0 && k.lease == in.lease+1 {
					next.keys[i] = linKey{}
					next.rev = rev
				}
			}
		}
		switch {
		case out.unknown && refused:
			return []any{s}
		case out.unknown:
			return []any{s, next}
		case refused:
			if out.refused {
				return []any{s}
			}
			return nil
		case out.refused:
			return nil
		case out.rev != next.rev:
			return nil
		}
		return []any{next}
	},
	Hash: func(state any) uint64 {
		s := state.(linState)
		h := fnv.New64a()
		fmt.Fprint(h, s.rev, s.leases)
		for _, k := range s.keys {
			fmt.Fprint(h, k.val, k.mod, k.lease)
		}
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		call := fmt.Sprintf("%c(k%d %q lease %d mod %d)", in.op, in.key, in.val, in.lease, in.mod)
		switch {
		case out.unknown:
			return call + " -> ?"
		case out.refused:
			return call + " -> refused"
		}
		return fmt.Sprintf("%s -> rev %d %q mod %d ok %v", call, out.rev, out.val, out.mod, out.ok)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%+v", state.(linState)) },
}

// linHistory is one history's record: the operations, for porcupine,
// and the revisions the acknowledged writes took, for the watch check.
type linHistory struct {
	prefix string
	rev0   int64 // the store's revision before the history
	leases [linLeases]clientv3.LeaseID

	mu     sync.Mutex
	ops    []porcupine.Operation
	writes map[int64]linInput // acknowledged writes by revision
}

func (h *linHistory) key(i int) string { return fmt.Sprintf("%sk%d", h.prefix, i) }

// run runs client c's calls until stop closes or it made max of them.
func (h *linHistory) run(c int, cli *clientv3.Client, r *rand.Rand, start time.Time, stop <-chan struct{}, max int) {
	granted := 0 // the client's lease slots are c*8 ... c*8+7
	for i := 0; i < max; i++ {
		select {
		case <-stop:
			return
		default:
		}
		in := linInput{key: r.IntN(linKeys), lease: -1, val: fmt.Sprintf("c%d.%d", c, i)}
		switch p := r.IntN(100); {
		case p < 30:
			in.op = 'g'
		case p < 52:
			in.op = 'p'
		case p < 60:
			in.op, in.lease = 'p', c*8+r.IntN(8)
		case p < 75:
			in.op = 'c'
		case p < 85:
			in.op = 'd'
		case p < 92 && granted < 8:
			in.op, in.lease = 'L', c*8+granted
			granted++
		default:
			in.op, in.lease = 'R', c*8+r.IntN(8)
		}
		if in.op == 'c' {
			// Compare against what a serializable read says, so that
			// swaps succeed often.
			x, cancel := context.WithTimeout(context.Background(), time.Second)
			g, err := cli.Get(x, h.key(in.key), clientv3.WithSerializable())
			cancel()
			if err == nil && len(g.Kvs) == 1 {
				in.mod = g.Kvs[0].ModRevision
			}
		}
		call := time.Since(start).Nanoseconds()
		out := h.do(cli, in)
		ret := time.Since(start).Nanoseconds()
		if out.unknown && in.op == 'g' {
			continue // a read that failed tells nothing
		}
		h.mu.Lock()
		if out.unknown {
			ret = -1 // set to after every other operation when checked
		} else if !out.refused && in.op != 'g' && in.op != 'L' && in.op != 'R' && (in.op != 'c' || out.ok) && (in.op != 'd' || out.ok) {
			h.writes[out.rev] = in
		}
		h.ops = append(h.ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
		h.mu.Unlock()
		time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
	}
}

// do makes one call.
func (h *linHistory) do(cli *clientv3.Client, in linInput) linOutput {
	x, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	key := h.key(in.key)
	var out linOutput
	var err error
	switch in.op {
	case 'g':
		var g *clientv3.GetResponse
		if g, err = cli.Get(x, key); err == nil {
			out.rev = g.Header.Revision
			if len(g.Kvs) == 1 {
				out.val, out.mod = string(g.Kvs[0].Value), g.Kvs[0].ModRevision
			}
		}
	case 'p':
		var opts []clientv3.OpOption
		if in.lease >= 0 {
			opts = append(opts, clientv3.WithLease(h.leases[in.lease]))
		}
		var p *clientv3.PutResponse
		if p, err = cli.Put(x, key, in.val, opts...); err == nil {
			out.rev = p.Header.Revision
		}
	case 'c':
		var tr *clientv3.TxnResponse
		tr, err = cli.Txn(x).If(clientv3.Compare(clientv3.ModRevision(key), "=", in.mod)).
			Then(clientv3.OpPut(key, in.val)).Else(clientv3.OpGet(key)).Commit()
		if err == nil {
			out.rev, out.ok = tr.Header.Revision, tr.Succeeded
		}
	case 'd':
		var d *clientv3.DeleteResponse
		if d, err = cli.Delete(x, key); err == nil {
			out.rev, out.ok = d.Header.Revision, d.Deleted > 0
		}
	case 'L':
		// etcd's own client, without the retries of clientv3.Lease (a
		// retried call would answer for an earlier attempt), and with the
		// slot's lease id, so that the model knows which lease a put names.
		_, err = pb.NewLeaseClient(cli.ActiveConnection()).LeaseGrant(x, &pb.LeaseGrantRequest{TTL: 600, ID: int64(h.leases[in.lease])})
	case 'R':
		var rv *pb.LeaseRevokeResponse
		if rv, err = pb.NewLeaseClient(cli.ActiveConnection()).LeaseRevoke(x, &pb.LeaseRevokeRequest{ID: int64(h.leases[in.lease])}); err == nil {
			out.rev = rv.Header.Revision
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, rpctypes.ErrLeaseNotFound), errors.Is(err, rpctypes.ErrLeaseExist):
		out.refused = true
	default:
		out.unknown = true
	}
	return out
}

// TestLinearizable: three members in their own processes take gets, puts
// (some with a lease), compare-and-swaps, deletes, lease grants and
// revokes from clientv3 clients through different members, while the
// leader is killed (SIGKILL) and restarted in every history. Each history
// must be linearizable against a model of etcd's store with its revisions
// (porcupine); and each member's watch of the history's keys, resumed
// across kills, must be ordered, without gaps or duplicates, with each
// revision's events together, agree with every acknowledged write, and
// read the same from any revision again. QUIVER_SERVE_HISTORIES sets the
// histories (default 10, 3 with -short; the long run is 200).
func TestLinearizable(t *testing.T) {
	histories := 10
	if testing.Short() {
		histories = 3
	}
	if n, err := strconv.Atoi(os.Getenv("QUIVER_SERVE_HISTORIES")); err == nil && n > 0 {
		histories = n
	}
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	c := newProcCluster(t)
	all := client(t, c.addrs()...)
	var illegal, unknownResults, ops, unknownOps int
	for hi := 0; hi < histories; hi++ {
		h := &linHistory{prefix: fmt.Sprintf("h%03d/", hi), writes: map[int64]linInput{}}
		h.rev0 = getEventually(t, all, h.prefix).Header.Revision
		for i := range h.leases {
			h.leases[i] = clientv3.LeaseID(int64(hi+1)<<32 | int64(i+1))
		}

		// One watcher per member, from the history's first revision.
		watchCtx, stopWatch := context.WithCancel(context.Background())
		watches := make([]*linWatch, len(c.names))
		for i, n := range c.names {
			w := &linWatch{}
			watches[i] = w
			wc := client(t, c.clientAddr[n]).Watch(watchCtx, h.prefix, clientv3.WithPrefix(), clientv3.WithRev(h.rev0+1))
			go w.collect(wc)
		}

		start := time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for cl := 0; cl < 4; cl++ {
			var cli *clientv3.Client
			if cl < 3 {
				cli = client(t, c.clientAddr[c.names[cl]])
			} else {
				cli = all
			}
			rc := testutil.Rand(r.Uint64())
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.run(cl, cli, rc, start, stop, 250)
			}()
		}
		victim := c.leader(all)
		time.Sleep(time.Duration(300+r.IntN(400)) * time.Millisecond)
		c.kill(victim)
		time.Sleep(time.Duration(200+r.IntN(400)) * time.Millisecond)
		c.start(victim)
		time.Sleep(time.Duration(300+r.IntN(300)) * time.Millisecond)
		close(stop)
		wg.Wait()

		end := time.Since(start).Nanoseconds()
		for i := range h.ops {
			if h.ops[i].Return < 0 {
				h.ops[i].Return = end + int64(i) + 1
				unknownOps++
			}
		}
		ops += len(h.ops)
		res, info := porcupine.CheckOperationsVerbose(linEtcdModel(h.rev0), h.ops, time.Minute)
		switch res {
		case porcupine.Illegal:
			illegal++
			path := fmt.Sprintf("%s/linearizable-h%03d.html", t.TempDir(), hi)
			if f, err := os.Create(path); err == nil {
				_ = porcupine.Visualize(linEtcdModel(h.rev0), info, f)
				f.Close()
			}
			var lines []string
			sorted := slices.Clone(h.ops)
			slices.SortFunc(sorted, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			for _, op := range sorted {
				lines = append(lines, fmt.Sprintf("%12d %12d c%d %s", op.Call, op.Return, op.ClientId, linModel.DescribeOperation(op.Input, op.Output)))
			}
			_ = os.WriteFile(strings.TrimSuffix(path, ".html")+".txt", []byte(strings.Join(lines, "\n")), 0o644)
			t.Errorf("history %d (%d operations) is not linearizable; see %s and .txt", hi, len(h.ops), path)
		case porcupine.Unknown:
			unknownResults++
			t.Logf("history %d: the check timed out after a minute", hi)
		}

		// The final state, read linearizably, ends every watch. An operation
		// of unknown outcome may still commit after that read: events past
		// its revision are left out of the comparisons.
		final := getEventually(t, all, h.prefix)
		upToFinal := func(evs []*clientv3.Event) []*clientv3.Event {
			n := len(evs)
			for n > 0 && evs[n-1].Kv.ModRevision > final.Header.Revision {
				n--
			}
			return evs[:n]
		}
		var ref []*clientv3.Event
		for i, w := range watches {
			evs, err := w.until(final.Header.Revision, 30*time.Second)
			evs = upToFinal(evs)
			if err != nil {
				t.Fatalf("history %d: member %s's watch: %v", hi, c.names[i], err)
			}
			if err := h.checkWatch(evs, final); err != nil {
				t.Fatalf("history %d: member %s's watch: %v", hi, c.names[i], err)
			}
			if i == 0 {
				ref = evs
			} else if !sameEvents(evs, ref) {
				t.Fatalf("history %d: members %s and %s watched different events", hi, c.names[0], c.names[i])
			}
		}
		stopWatch()
		// Resumable: a new watch from the middle revision, on any member,
		// sees the same suffix.
		if len(ref) > 0 {
			mid := ref[len(ref)/2].Kv.ModRevision
			w := &linWatch{}
			wctx, cancel := context.WithCancel(context.Background())
			go w.collect(client(t, c.clientAddr[c.names[r.IntN(3)]]).Watch(wctx, h.prefix, clientv3.WithPrefix(), clientv3.WithRev(mid)))
			evs, err := w.until(final.Header.Revision, 30*time.Second)
			cancel()
			evs = upToFinal(evs)
			i := slices.IndexFunc(ref, func(e *clientv3.Event) bool { return e.Kv.ModRevision == mid })
			if err != nil || !sameEvents(evs, ref[i:]) {
				t.Fatalf("history %d: the watch from revision %d differs from the first watches' (%v): %d events against %d, %s", hi, mid, err, len(evs), len(ref)-i, firstDifference(evs, ref[i:]))
			}
		}
		t.Logf("history %d: %d operations (%d of unknown outcome), revisions %d..%d, killed %s: %v", hi, len(h.ops), countUnknown(h.ops), h.rev0+1, final.Header.Revision, victim, res)
	}
	t.Logf("%d histories, %d operations (%d of unknown outcome): %d illegal, %d not decided in time", histories, ops, unknownOps, illegal, unknownResults)
	if unknownResults > histories/10 {
		t.Errorf("%d of %d histories were not decided in time", unknownResults, histories)
	}
}

func countUnknown(ops []porcupine.Operation) int {
	n := 0
	for _, op := range ops {
		if op.Output.(linOutput).unknown {
			n++
		}
	}
	return n
}

// linWatch collects one watch's events.
type linWatch struct {
	mu     sync.Mutex
	events []*clientv3.Event
	resps  [][2]int64 // each response's first and last revision
	err    error
}

func (w *linWatch) collect(wc clientv3.WatchChan) {
	for resp := range wc {
		w.mu.Lock()
		if err := resp.Err(); err != nil && w.err == nil && !errors.Is(err, context.Canceled) {
			w.err = err
		}
		if n := len(resp.Events); n > 0 {
			w.events = append(w.events, resp.Events...)
			w.resps = append(w.resps, [2]int64{resp.Events[0].Kv.ModRevision, resp.Events[n-1].Kv.ModRevision})
		}
		w.mu.Unlock()
	}
}

// until waits for the watch to reach revision rev, then returns its events
// after checking their order: revisions rising, each response's events
// of whole revisions (no revision split across responses).
func (w *linWatch) until(rev int64, timeout time.Duration) ([]*clientv3.Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		evs, resps, err := slices.Clone(w.events), slices.Clone(w.resps), w.err
		w.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 && evs[len(evs)-1].Kv.ModRevision >= rev {
			for i := 1; i < len(evs); i++ {
				if evs[i].Kv.ModRevision < evs[i-1].Kv.ModRevision {
					return nil, fmt.Errorf("revision %d after %d", evs[i].Kv.ModRevision, evs[i-1].Kv.ModRevision)
				}
			}
			for i := 1; i < len(resps); i++ {
				if resps[i][0] <= resps[i-1][1] {
					return nil, fmt.Errorf("a response starts at revision %d, the one before ended at %d: a revision split or repeated", resps[i][0], resps[i-1][1])
				}
			}
			return evs, nil
		}
		if time.Now().After(deadline) {
			last := int64(0)
			if len(evs) > 0 {
				last = evs[len(evs)-1].Kv.ModRevision
			}
			return nil, fmt.Errorf("reached revision %d in %v, want %d", last, timeout, rev)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkWatch checks a watch's events against the history: every revision
// from the first after rev0 to the final one, none twice; each
// acknowledged write at its revision with its key and value; replaying
// them gives the final state.
func (h *linHistory) checkWatch(evs []*clientv3.Event, final *clientv3.GetResponse) error {
	byRev := map[int64][]*clientv3.Event{}
	for _, e := range evs {
		byRev[e.Kv.ModRevision] = append(byRev[e.Kv.ModRevision], e)
	}
	for rev := h.rev0 + 1; rev <= final.Header.Revision; rev++ {
		if len(byRev[rev]) == 0 {
			return fmt.Errorf("no event at revision %d (a gap)", rev)
		}
	}
	if len(byRev) != int(final.Header.Revision-h.rev0) {
		return fmt.Errorf("events at %d revisions, %d expected", len(byRev), final.Header.Revision-h.rev0)
	}
	for rev, in := range h.writes {
		got := byRev[rev]
		switch in.op {
		case 'p', 'c':
			if len(got) != 1 || got[0].Type != mvccpb.PUT || string(got[0].Kv.Key) != h.key(in.key) || string(got[0].Kv.Value) != in.val {
				return fmt.Errorf("revision %d: the acknowledged put of %s=%s is not what was watched: %v", rev, h.key(in.key), in.val, got)
			}
		case 'd':
			if len(got) != 1 || got[0].Type != mvccpb.DELETE || string(got[0].Kv.Key) != h.key(in.key) {
				return fmt.Errorf("revision %d: the acknowledged delete of %s is not what was watched: %v", rev, h.key(in.key), got)
			}
		case 'R':
			if rev > h.rev0 && len(got) > 0 {
				for _, e := range got {
					if e.Type != mvccpb.DELETE {
						return fmt.Errorf("revision %d: a revoke watched as %v", rev, got)
					}
				}
			}
		}
	}
	state := map[string]string{}
	seen := map[string]bool{}
	for _, e := range evs {
		id := fmt.Sprint(e.Kv.ModRevision, string(e.Kv.Key))
		if seen[id] {
			return fmt.Errorf("the event of %s at revision %d came twice", e.Kv.Key, e.Kv.ModRevision)
		}
		seen[id] = true
		if e.Type == mvccpb.PUT {
			state[string(e.Kv.Key)] = string(e.Kv.Value)
		} else {
			delete(state, string(e.Kv.Key))
		}
	}
	var want []string
	for _, kv := range final.Kvs {
		want = append(want, string(kv.Key)+"="+string(kv.Value))
	}
	var got []string
	for k, v := range state {
		got = append(got, k+"="+v)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("the watched events give %v, the final read %v", got, want)
	}
	return nil
}

// firstDifference describes where event lists a and b first differ.
func firstDifference(a, b []*clientv3.Event) string {
	for i := range min(len(a), len(b)) {
		if !sameEvents(a[i:i+1], b[i:i+1]) {
			return fmt.Sprintf("event %d: %v against %v", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}

func sameEvents(a, b []*clientv3.Event) bool {
	return slices.EqualFunc(a, b, func(x, y *clientv3.Event) bool {
		return x.Type == y.Type && x.Kv.ModRevision == y.Kv.ModRevision && string(x.Kv.Key) == string(y.Kv.Key) && string(x.Kv.Value) == string(y.Kv.Value)
	})
}

// getEventually reads the keys under prefix linearizably, retrying for up
// to 10 s while members restart.
func getEventually(t *testing.T, cli *clientv3.Client, prefix string) *clientv3.GetResponse {
	t.Helper()
	var g *clientv3.GetResponse
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		if g, err = cli.Get(ctx(t), prefix, clientv3.WithPrefix()); err == nil {
			return g
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("reading %s: %v", prefix, err)
	return nil
}
