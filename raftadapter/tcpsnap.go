package raftadapter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cespare/xxhash/v2"
	pb "go.etcd.io/raft/v3/raftpb"
)

// SendSnapshot implements Transport: m and its image go to the peer on a
// connection of their own (see the wire format above), and the call
// returns the receiver's answer.
func (t *TCPTransport) SendSnapshot(ctx context.Context, m *pb.Message, image io.Reader) error {
	to := m.GetTo()
	t.mu.Lock()
	p := t.peers[to]
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return errors.New("raftadapter: the transport is closed")
	}
	if p == nil {
		return fmt.Errorf("raftadapter: no address for node %d", to)
	}
	c, err := t.dial(ctx, p.addr)
	if err != nil {
		return fmt.Errorf("raftadapter: snapshot to %d: %w", to, err)
	}
	if !t.track(c) {
		c.Close()
		return errors.New("raftadapter: the transport is closed")
	}
	defer t.untrack(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := t.writeSnapshot(c, m, image); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("raftadapter: snapshot to %d: %w", to, err)
	}
	return nil
}

// track registers an outgoing snapshot connection, so that Close ends it.
func (t *TCPTransport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCPTransport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// writeSnapshot writes the stream of one snapshot and reads the answer.
func (t *TCPTransport) writeSnapshot(c net.Conn, m *pb.Message, image io.Reader) error {
	w := bufio.NewWriterSize(c, 64<<10)
	_, _ = w.Write(t.header(kindSnapshot))
	if err := t.writeFrame(c, w, m); err != nil {
		return err
	}
	h := xxhash.New()
	buf := make([]byte, min(snapshotChunk, t.cfg.MaxFrame))
	var l [4]byte
	for {
		n, err := io.ReadFull(image, buf)
		if n > 0 {
			_, _ = h.Write(buf[:n])
			_ = c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			binary.BigEndian.PutUint32(l[:], uint32(n))
			if _, err := w.Write(l[:]); err != nil {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the image: %w", err)
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	binary.BigEndian.PutUint32(l[:], 0)
	_, _ = w.Write(l[:])
	_, _ = w.Write(binary.BigEndian.AppendUint64(nil, h.Sum64()))
	if err := w.Flush(); err != nil {
		return err
	}
	// The answer comes once the receiver has verified and handled it.
	_ = c.SetReadDeadline(time.Now().Add(t.cfg.SnapshotTimeout))
	r := bufio.NewReader(c)
	var ans [3]byte
	if _, err := io.ReadFull(r, ans[:]); err != nil {
		return fmt.Errorf("no answer from the receiver: %w", err)
	}
	if ans[0] == 0 {
		return nil
	}
	msg := make([]byte, binary.BigEndian.Uint16(ans[1:]))
	_, _ = io.ReadFull(r, msg)
	return fmt.Errorf("the receiver refused it: %s", msg)
}

// receiveSnapshot reads the image of m, a snapshot, hands both to the
// node, and answers the sender.
func (t *TCPTransport) receiveSnapshot(c net.Conn, r *bufio.Reader, m *pb.Message) error {
	if m.GetType() != pb.MessageType_MsgSnap {
		return fmt.Errorf("a %v from %d on a snapshot stream", m.GetType(), m.GetFrom())
	}
	node := t.attached()
	if node == nil {
		return fmt.Errorf("a snapshot from %d, and no node to take it", m.GetFrom())
	}
	img := &chunkReader{t: t, c: c, r: r, h: xxhash.New()}
	err := node.StepSnapshot(context.Background(), m, img)
	if err == nil && !img.done {
		err = errors.New("the node did not read the image to its end")
	}
	ans := []byte{0, 0, 0}
	if err != nil {
		msg := err.Error()
		if len(msg) > 4096 {
			msg = msg[:4096]
		}
		ans[0] = 1
		binary.BigEndian.PutUint16(ans[1:], uint16(len(msg)))
		ans = append(ans, msg...)
	}
	_ = c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	if _, werr := c.Write(ans); werr != nil && err == nil {
		err = werr
	}
	if err == nil {
		return io.EOF // the stream is done
	}
	return fmt.Errorf("snapshot %d from %d: %w", m.GetSnapshot().GetMetadata().GetIndex(), m.GetFrom(), err)
}

// chunkReader reads the image of a snapshot stream: its chunks, then,
// at the zero length, the hash, which must match the bytes read.
type chunkReader struct {
	t    *TCPTransport
	c    net.Conn
	r    *bufio.Reader
	h    *xxhash.Digest
	left int  // bytes left in the current chunk
	done bool // the hash was read and matched
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	if cr.done {
		return 0, io.EOF
	}
	_ = cr.c.SetReadDeadline(time.Now().Add(cr.t.cfg.IdleTimeout))
	if cr.left == 0 {
		var l [4]byte
		if _, err := io.ReadFull(cr.r, l[:]); err != nil {
			return 0, truncated("chunk length", err)
		}
		n := int(binary.BigEndian.Uint32(l[:]))
		if n == 0 {
			var sum [8]byte
			if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
				return 0, truncated("image hash", err)
			}
			if got, want := cr.h.Sum64(), binary.BigEndian.Uint64(sum[:]); got != want {
				return 0, fmt.Errorf("the image's hash is %016x, the sender's %016x: damaged in transit", got, want)
			}
			cr.done = true
			return 0, io.EOF
		}
		if n > min(snapshotChunk, cr.t.cfg.MaxFrame) {
			return 0, fmt.Errorf("a %d-byte image chunk exceeds the %d-byte limit", n, min(snapshotChunk, cr.t.cfg.MaxFrame))
		}
		cr.left = n
	}
	n, err := cr.r.Read(p[:min(len(p), cr.left)])
	cr.left -= n
	_, _ = cr.h.Write(p[:n])
	if err != nil {
		return n, truncated("image chunk", err)
	}
	return n, nil
}

func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the snapshot stream ends in its %s: %w", what, io.ErrUnexpectedEOF)
	}
	return err
}
