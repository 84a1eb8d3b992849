// go_tls_loop: the cost of crypto/tls.(*Conn) Write and Read calls, for
// bench/bench_go_tls_call_cost.py (run with and without the sensor).
//
// Client and server talk through an in-memory connection that never blocks a writer, so
// the n Writes (1,000 bytes each) and then the n Reads are timed separately, without
// sockets or scheduler hand-offs: just crypto/tls, plus the probes when attached.
//
//	go_tls_loop -cert server.pem -key server.key -ca ca.pem -n 20000 [-pause 50us]
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// buffer is one direction of the connection: unbounded, so writes never wait.
type buffer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	data   []byte
	closed bool
}

func newBuffer() *buffer {
	b := &buffer{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *buffer) read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) == 0 && !b.closed {
		b.cond.Wait()
	}
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *buffer) write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *buffer) close() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

type addr struct{}

func (addr) Network() string { return "mem" }
func (addr) String() string  { return "mem" }

// memConn is one end of the in-memory connection.
type memConn struct{ in, out *buffer }

func (c memConn) Read(p []byte) (int, error)     { return c.in.read(p) }
func (c memConn) Write(p []byte) (int, error)    { return c.out.write(p) }
func (c memConn) Close() error                   { c.out.close(); return nil }
func (memConn) LocalAddr() net.Addr              { return addr{} }
func (memConn) RemoteAddr() net.Addr             { return addr{} }
func (memConn) SetDeadline(time.Time) error      { return nil }
func (memConn) SetReadDeadline(time.Time) error  { return nil }
func (memConn) SetWriteDeadline(time.Time) error { return nil }

// spin waits without sleeping: a sleeping CPU wakes up with cold caches (and, in a VM,
// after an exit), which would add microseconds to the next timed call.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	certFile := flag.String("cert", "", "server certificate (PEM)")
	keyFile := flag.String("key", "", "server key (PEM)")
	caFile := flag.String("ca", "", "CA certificate (PEM)")
	n := flag.Int("n", 20000, "calls of each kind")
	size := flag.Int("size", 1000, "bytes per Write")
	pause := flag.Duration("pause", 0, "untimed pause after each call (0: back to back)")
	flag.Parse()

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fail(err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	a, b := newBuffer(), newBuffer()
	client := tls.Client(memConn{in: a, out: b}, &tls.Config{RootCAs: pool, ServerName: "api.openai.com"})
	server := tls.Server(memConn{in: b, out: a}, &tls.Config{Certificates: []tls.Certificate{cert}})
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		fail(err)
	}
	if err := <-done; err != nil {
		fail(err)
	}

	// Room for every record up front and no GC while timing: the VM is noisy enough.
	b.data = make([]byte, 0, *n*(*size+64))
	debug.SetGCPercent(-1)
	msg := make([]byte, *size)
	for i := range msg {
		msg[i] = 'x'
	}
	// With -pause, each call is timed on its own and followed by an untimed busy pause, so
	// that the sensor's consumer keeps up (a burst fills its ring buffer, and then every
	// record wakes the consumer: a different cost).
	var writeTime, readTime time.Duration
	for i := 0; i < *n; i++ {
		start := time.Now()
		if _, err := client.Write(msg); err != nil {
			fail(err)
		}
		writeTime += time.Since(start)
		spin(*pause)
	}
	buf := make([]byte, 2**size)
	for got := 0; got < *n**size; {
		start := time.Now()
		k, err := server.Read(buf)
		if err != nil {
			fail(err)
		}
		readTime += time.Since(start)
		got += k
		spin(*pause)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]float64{
		"write_us": float64(writeTime.Nanoseconds()) / float64(*n) / 1000,
		"read_us":  float64(readTime.Nanoseconds()) / float64(*n) / 1000,
	})
}
