// Package testutil holds the helpers that tests of several packages share:
// seeds for randomised tests and the harness of the kill tests. It
// imports nothing of quiver, so that any package's tests may use it,
// white-box ones included.
package testutil

import (
	"bufio"
	"flag"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomised tests (0: from the clock; also QUIVER_SEED)")

// Seed returns the seed of a randomised test: -seed, else QUIVER_SEED,
// else the clock. It logs it, so that a failure is reproducible from its
// log line alone.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		if s, err := strconv.ParseUint(os.Getenv("QUIVER_SEED"), 10, 64); err == nil {
			seed = s
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d or QUIVER_SEED=%d)", seed, seed, seed)
	return seed
}

// Rand returns a generator seeded with seed.
func Rand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// KillCycles returns the number of cycles of a kill test: QUIVER_KILL_CYCLES
// if set, else def.
func KillCycles(def int) int {
	if n, err := strconv.Atoi(os.Getenv("QUIVER_KILL_CYCLES")); err == nil && n > 0 {
		return n
	}
	return def
}

// RunKilled runs the test named child of this test binary in a child
// process with env added to its environment, kills it with SIGKILL after
// wait, waits for it to end, and returns every line it printed on stdout
// before it died, in order. The child's stderr goes to this process's.
func RunKilled(t testing.TB, child string, env []string, wait time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		lines <- got
	}()
	time.Sleep(wait)
	_ = cmd.Process.Kill()
	got := <-lines
	_ = cmd.Wait()
	return got
}

// FreeAddr returns a loopback address with a port free when it returns.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
