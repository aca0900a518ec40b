// A job API client that is not ringtune's: plain JSON over NATS with the NATS Go client, to show that a
// pipeline in another language can submit, follow, read and cancel jobs from the documented subjects.
//
//	jobapi_client -url URL submit REQUEST.json   prints the new job's id (REQUEST.json: {"spec": ..., "base_dir": ...})
//	jobapi_client -url URL follow ID             watches the job's record in KV until it ends; prints it as JSON
//	jobapi_client -url URL get ID | cancel ID | list
//
// A refusal prints the error object as JSON on stderr and exits with status 2.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

const bucket = "ringtune-jobs"

type apiError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Key     *string `json:"key"`
}

type reply struct {
	Ok    bool            `json:"ok"`
	ID    string          `json:"id,omitempty"`
	Job   json.RawMessage `json:"job,omitempty"`
	Jobs  json.RawMessage `json:"jobs,omitempty"`
	Error *apiError       `json:"error,omitempty"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

var timeout = flag.Duration("timeout", 15*time.Second, "how long to wait for a reply")

// ask sends a JSON request, saying so in its header, and decodes the JSON reply.
func ask(nc *nats.Conn, subject string, body interface{}) reply {
	data, err := json.Marshal(body)
	if err != nil {
		fail("encoding the request: %v", err)
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set("Content-Type", "application/json")
	msg.Data = data
	res, err := nc.RequestMsg(msg, *timeout)
	if err != nil {
		fail("%s: %v", subject, err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		fail("%s: reply Content-Type %q, want application/json", subject, ct)
	}
	var r reply
	if err := json.Unmarshal(res.Data, &r); err != nil {
		fail("%s: the reply is not JSON: %v", subject, err)
	}
	if !r.Ok {
		out, _ := json.Marshal(r.Error)
		fmt.Fprintln(os.Stderr, string(out))
		os.Exit(2)
	}
	return r
}

// follow watches the job's key in the KV bucket (history, then live updates) until a final status.
func follow(nc *nats.Conn, id string) {
	js, err := nc.JetStream()
	if err != nil {
		fail("JetStream: %v", err)
	}
	kv, err := js.KeyValue(bucket)
	if err != nil {
		fail("KV bucket %s: %v", bucket, err)
	}
	w, err := kv.Watch(id)
	if err != nil {
		fail("watching %s: %v", id, err)
	}
	defer w.Stop()
	last := ""
	for e := range w.Updates() {
		if e == nil || e.Operation() != nats.KeyValuePut {
			continue // nil marks the end of the initial values
		}
		var record struct {
			Status string `json:"status"`
			Step   int    `json:"step"`
		}
		if err := json.Unmarshal(e.Value(), &record); err != nil {
			fail("job %s: the record is not JSON: %v", id, err)
		}
		if record.Status != last {
			fmt.Fprintf(os.Stderr, "%s %s at step %d\n", id, record.Status, record.Step)
			last = record.Status
		}
		switch record.Status {
		case "completed", "failed", "canceled":
			fmt.Println(string(e.Value()))
			return
		}
	}
	fail("the watch on %s ended before the job did", id)
}

func main() {
	url := flag.String("url", nats.DefaultURL, "NATS server URL")
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 {
		fail("usage: jobapi_client -url URL submit FILE | follow ID | get ID | cancel ID | list")
	}
	nc, err := nats.Connect(*url, nats.Name("jobapi-go-client"))
	if err != nil {
		fail("connecting to %s: %v", *url, err)
	}
	defer nc.Close()
	arg := func() string {
		if len(args) < 2 {
			fail("%s needs an argument", args[0])
		}
		return args[1]
	}
	switch args[0] {
	case "submit":
		text, err := os.ReadFile(arg())
		if err != nil {
			fail("%v", err)
		}
		var request map[string]interface{}
		if err := json.Unmarshal(text, &request); err != nil {
			fail("%s: %v", arg(), err)
		}
		fmt.Println(ask(nc, "ringtune.job.submit", request).ID)
	case "follow":
		follow(nc, arg())
	case "get":
		fmt.Println(string(ask(nc, "ringtune.job.get", map[string]string{"id": arg()}).Job))
	case "cancel":
		ask(nc, "ringtune.job.cancel", map[string]string{"id": arg()})
	case "list":
		fmt.Println(string(ask(nc, "ringtune.job.list", map[string]string{}).Jobs))
	default:
		fail("unknown command %q", args[0])
	}
}
