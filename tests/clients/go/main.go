// oisp-go-client: a Go program (standard library only) that calls the OpenAI chat
// completions API, for the sensor's end-to-end tests of Go's crypto/tls capture.
//
// The CA is trusted through SSL_CERT_FILE (Go reads it on Linux); the key comes from
// OPENAI_API_KEY. Build with CGO_ENABLED=0 so that no libc or OpenSSL is involved.
//
//	oisp-go-client -url https://api.openai.com/v1/chat/completions -content hi [-stream] [-n 10] [-parallel 4]
//	oisp-go-client -content hi -duration 10s -pause 2ms -parallel 2
//	oisp-go-client -raw -addr api.openai.com:443 -n 300
//
// One JSON line per call on stdout. With -raw, requests are written on one TLS connection
// by hand (HTTP/1.1, keep-alive), each from a fresh goroutine after a recursion of varying
// depth, so that some tls.(*Conn).Write and Read calls find their goroutine's stack full
// and run runtime.morestack first (the path where a probe at function entry is hit twice).
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []message      `json:"messages"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type result struct {
	Pid     int    `json:"pid"`
	Proto   string `json:"proto"`
	Status  int    `json:"status"`
	Content string `json:"content"`
	Error   string `json:"error,omitempty"`
}

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func emit(r result) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(r)
}

func body(model, content string, stream bool) []byte {
	req := chatRequest{Model: model, Messages: []message{{Role: "user", Content: content}}, Stream: stream}
	if stream {
		req.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	b, _ := json.Marshal(req)
	return b
}

// replyText extracts the assistant's text from a plain or streamed (SSE) answer.
func replyText(data []byte, stream bool) (string, error) {
	if !stream {
		var resp struct {
			Choices []struct {
				Message message `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &resp); err != nil || len(resp.Choices) == 0 {
			return "", fmt.Errorf("unexpected answer: %.200s", data)
		}
		return resp.Choices[0].Message.Content, nil
	}
	var text strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		payload := strings.TrimPrefix(line, "data: ")
		if payload == line || payload == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta message `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(payload), &chunk); err != nil {
			return "", err
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	return text.String(), nil
}

func httpCall(client *http.Client, url, key, model, content string, stream bool) result {
	r := result{Pid: os.Getpid()}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body(model, content, stream)))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer resp.Body.Close()
	r.Proto, r.Status = resp.Proto, resp.StatusCode
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		r.Content, err = replyText(data, stream)
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// deep calls f at the bottom of a recursion `n` frames deep.
//
//go:noinline
func deep(n int, f func()) int {
	var pad [4]int
	if n > 0 {
		pad[n%4] = deep(n-1, f)
	} else {
		f()
	}
	return pad[0] + pad[1] + pad[2] + pad[3] + n
}

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func readResponse(r *bufio.Reader) (int, []byte, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, err
	}
	fields := strings.Fields(status)
	if len(fields) < 2 {
		return 0, nil, errors.New("bad status line: " + status)
	}
	code, _ := strconv.Atoi(fields[1])
	length := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		}
	}
	if length < 0 {
		return 0, nil, errors.New("no content-length")
	}
	data := make([]byte, length)
	_, err = io.ReadFull(r, data)
	return code, data, err
}

func rawCalls(addr, host, key, model, content string, n, maxDepth int) int {
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}})
	if err != nil {
		emit(result{Pid: os.Getpid(), Error: err.Error()})
		return 1
	}
	defer conn.Close()
	// Small reads (64 bytes) make many tls.(*Conn).Read calls per response.
	reader := bufio.NewReaderSize(conn, 64)
	failures := 0
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("%s %d", content, i)
		b := body(model, text, false)
		// Built before the recursion: Write must be the first call at the bottom of the stack.
		request := []byte(fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", host, key, len(b), b))
		r := result{Pid: os.Getpid(), Proto: "HTTP/1.1"}
		done := make(chan struct{})
		// A fresh goroutine (a fresh small stack) for each call, deeper each time.
		go func(depth int) {
			defer close(done)
			deep(depth, func() {
				if _, err := conn.Write(request); err != nil {
					r.Error = err.Error()
					return
				}
				code, data, err := readResponse(reader)
				r.Status = code
				if err == nil {
					r.Content, err = replyText(data, false)
				}
				if err != nil {
					r.Error = err.Error()
				}
			})
		}(i % maxDepth)
		<-done
		if r.Error != "" {
			failures++
		}
		emit(r)
	}
	return failures
}

func main() {
	url := flag.String("url", "https://api.openai.com/v1/chat/completions", "chat completions URL")
	model := flag.String("model", "gpt-4o-mini", "model")
	content := flag.String("content", "hello from go", "user message (numbered when -n > 1)")
	stream := flag.Bool("stream", false, "ask for a streamed (SSE) answer")
	n := flag.Int("n", 1, "number of calls")
	parallel := flag.Int("parallel", 1, "concurrent calls (HTTP mode)")
	raw := flag.Bool("raw", false, "hand-written HTTP/1.1 on one tls.Conn, from goroutines at varying stack depths")
	addr := flag.String("addr", "api.openai.com:443", "address for -raw")
	maxDepth := flag.Int("max-depth", 400, "-raw: recursion depths cycle through 0..max-depth-1")
	delay := flag.Duration("delay", 0, "wait this long before the first call")
	duration := flag.Duration("duration", 0, "HTTP mode: keep calling until this much time has passed (-n is ignored)")
	pause := flag.Duration("pause", 0, "HTTP mode: pause between the calls of each goroutine")
	flag.Parse()
	key := os.Getenv("OPENAI_API_KEY")
	time.Sleep(*delay)

	if *raw {
		host, _, _ := strings.Cut(*addr, ":")
		if rawCalls(*addr, host, key, *model, *content, *n, *maxDepth) > 0 {
			os.Exit(1)
		}
		return
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ForceAttemptHTTP2 = true
	client := &http.Client{Transport: transport}
	failures := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	calls := make(chan int)
	for w := 0; w < *parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				text := *content
				if *n > 1 || *duration > 0 {
					text = fmt.Sprintf("%s %d", *content, i)
				}
				r := httpCall(client, *url, key, *model, text, *stream)
				if r.Error != "" || r.Status != 200 {
					mu.Lock()
					failures++
					mu.Unlock()
				}
				emit(r)
				time.Sleep(*pause)
			}
		}()
	}
	// SIGTERM ends the run cleanly: no new calls, the ones in flight finish.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	deadline := time.Now().Add(*duration)
feed:
	for i := 0; *duration > 0 && time.Now().Before(deadline) || *duration == 0 && i < *n; i++ {
		select {
		case calls <- i:
		case <-stop:
			break feed
		}
	}
	close(calls)
	wg.Wait()
	if failures > 0 {
		os.Exit(1)
	}
}
