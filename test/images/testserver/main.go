// Command testserver is the HTTP server the end-to-end tests run in
// containers (built static, packed into an image by the test framework):
//
//	/          "hello from <hostname>"
//	/hostname  the hostname
//	/healthz   200 "ok" (for probes)
//	/env?name= an environment variable
//	/exit?code= exits with the code (for restart tests)
//	/download?bytes=N&seed=S
//	           N bytes of a ChaCha8 stream seeded with S repeated to 32
//	           bytes (for transfer tests, which generate the same stream to
//	           compare checksums)
//
// It listens on $PORT (default 8080) and logs each request to stdout.
package main

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	host, _ := os.Hostname()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, host) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name"))) })
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		log.Printf("exiting with %d", code)
		os.Exit(code)
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bytes: a size is required", http.StatusBadRequest)
			return
		}
		var seed [32]byte
		copy(seed[:], strings.Repeat(r.URL.Query().Get("seed")+"\x00", 32))
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.CopyN(w, rand.NewChaCha8(seed), n)
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s", r.Method, r.URL)
		mux.ServeHTTP(w, r)
	})
	log.SetOutput(os.Stdout)
	log.Printf("serving on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, logged))
}
