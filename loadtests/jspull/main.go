// jspull measures how fast a server delivers a stream's messages to a pull consumer, with
// the Go NATS client Debian packages (as ../shared/natsbench does for publishing), so that
// the client is not what is measured.
//
//	jspull -url nats://127.0.0.1:4222 -n 100000 -size 128 -batch 100 [-ack explicit|none] [-storage file|memory]
//
// It fills a fresh stream with -n messages (asynchronous publishes, not timed), then times
// a durable pull consumer fetching them -batch at a time, acknowledging each message
// (fire-and-forget, as clients do) with -ack explicit. Prints one JSON line.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Mode     string  `json:"mode"`
	Msgs     int     `json:"msgs"`
	Size     int     `json:"size"`
	Batch    int     `json:"batch"`
	Ack      string  `json:"ack"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_s"`
	MBPerS   float64 `json:"mb_per_s"`
	Error    string  `json:"error,omitempty"`
}

func main() {
	url := flag.String("url", nats.DefaultURL, "server URL")
	n := flag.Int("n", 100000, "messages")
	size := flag.Int("size", 128, "payload bytes")
	batch := flag.Int("batch", 100, "messages per fetch")
	ack := flag.String("ack", "explicit", "explicit | none")
	storage := flag.String("storage", "file", "file | memory")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after")
	flag.Parse()
	r := result{Mode: "jspull", Size: *size, Batch: *batch, Ack: *ack}
	die := func(err error) {
		r.Error = err.Error()
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
		os.Exit(1)
	}

	nc, err := nats.Connect(*url, nats.MaxReconnects(0))
	if err != nil {
		die(err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(256))
	if err != nil {
		die(err)
	}
	st := nats.FileStorage
	if *storage == "memory" {
		st = nats.MemoryStorage
	}
	js.DeleteStream("PULLBENCH")
	if _, err := js.AddStream(&nats.StreamConfig{Name: "PULLBENCH", Subjects: []string{"pullbench"}, Storage: st}); err != nil {
		die(err)
	}
	payload := make([]byte, *size)
	// The fill is not timed: wait out a slow disk instead of failing after nats.go's 200 ms.
	for i := 0; i < *n; i++ {
		if _, err := js.PublishAsync("pullbench", payload, nats.StallWait(10*time.Second)); err != nil {
			die(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(*timeout):
		die(fmt.Errorf("timeout waiting for publish acks"))
	}

	policy := nats.AckExplicitPolicy
	if *ack == "none" {
		policy = nats.AckNonePolicy
	}
	if _, err := js.AddConsumer("PULLBENCH", &nats.ConsumerConfig{Durable: "PULLER", AckPolicy: policy,
		AckWait: time.Minute, MaxAckPending: -1}); err != nil {
		die(err)
	}
	sub, err := js.PullSubscribe("pullbench", "PULLER", nats.Bind("PULLBENCH", "PULLER"))
	if err != nil {
		die(err)
	}
	got := 0
	deadline := time.Now().Add(*timeout)
	start := time.Now()
	for got < *n {
		if time.Now().After(deadline) {
			die(fmt.Errorf("timeout after %d messages", got))
		}
		msgs, err := sub.Fetch(*batch, nats.MaxWait(5*time.Second))
		if err != nil && err != nats.ErrTimeout {
			die(err)
		}
		for _, m := range msgs {
			if *ack != "none" {
				m.Ack()
			}
		}
		got += len(msgs)
	}
	nc.Flush()
	r.Seconds = time.Since(start).Seconds()
	r.Msgs = got
	r.MsgsPerS = float64(got) / r.Seconds
	r.MBPerS = r.MsgsPerS * float64(*size) / 1e6
	js.DeleteStream("PULLBENCH")
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}
