// Command testserver is the HTTP server the end-to-end tests run in
// containers (built static, packed into an image by the test framework):
//
//	/          "hello from <hostname>"
//	/hostname  the hostname
//	/port      the port the request came in on
//	/client    the client's address as the server sees it
//	/healthz   200 "ok" (for probes), or 500 "failing" after /fail-health
//	/fail-health makes /healthz (and the gRPC health service) fail
//	/heal      makes them pass again
//	/env?name= an environment variable
//	/exit?code= exits with the code (for restart tests)
//	/download?bytes=N&seed=S
//	           N bytes of a ChaCha8 stream seeded with S repeated to 32
//	           bytes (for transfer tests, which generate the same stream to
//	           compare checksums)
//
// It listens on $PORT (default 8080), and also on each port of
// $EXTRA_PORTS (comma-separated), and logs each request (method, URL and
// User-Agent) to stdout. With $GRPC_PORT set it also serves the gRPC
// health service (grpc.health.v1) there, SERVING until /fail-health.
// With $UDP_PORT set it answers every UDP datagram there with the
// hostname (as agnhost netexec does for "hostName").
// With $SHUTDOWN_DELAY (a duration) it keeps serving that long after
// SIGTERM, then finishes the requests in flight and exits 0, as a
// well-behaved server behind a Service does while the proxies forget it.
//
// As a client, `testserver dial tcp|udp HOST:PORT [PAYLOAD]` sends
// PAYLOAD (default "hostName\n") and prints the first answer (within 3
// seconds), exiting 1 without one: what `echo hostName | nc` does in the
// upstream e2e tests, for images without a UDP-capable nc.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) > 3 && os.Args[1] == "dial" {
		payload := "hostName\n"
		if len(os.Args) > 4 {
			payload = os.Args[4]
		}
		if err := dial(os.Args[2], os.Args[3], payload); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
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
	mux.HandleFunc("/port", func(w http.ResponseWriter, r *http.Request) {
		_, p, _ := net.SplitHostPort(r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
		fmt.Fprint(w, p)
	})
	mux.HandleFunc("/client", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.RemoteAddr) })
	var failing atomic.Bool
	grpcHealth := health.NewServer()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/fail-health", func(w http.ResponseWriter, r *http.Request) {
		failing.Store(true)
		grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		fmt.Fprint(w, "failing from now on")
	})
	mux.HandleFunc("/heal", func(w http.ResponseWriter, r *http.Request) {
		failing.Store(false)
		grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		fmt.Fprint(w, "healthy again")
	})
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
		log.Printf("%s %s %s", r.Method, r.URL, r.UserAgent())
		mux.ServeHTTP(w, r)
	})
	log.SetOutput(os.Stdout)
	if extra := os.Getenv("EXTRA_PORTS"); extra != "" {
		for _, p := range strings.Split(extra, ",") {
			go func() { log.Fatal(http.ListenAndServe(":"+p, logged)) }()
		}
	}
	if up := os.Getenv("UDP_PORT"); up != "" {
		pc, err := net.ListenPacket("udp", ":"+up)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("answering UDP on :%s", up)
		go func() {
			buf := make([]byte, 2048)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					log.Fatal(err)
				}
				_, _ = pc.WriteTo([]byte(host+"\n"), from)
			}
		}()
	}
	if gp := os.Getenv("GRPC_PORT"); gp != "" {
		l, err := net.Listen("tcp", ":"+gp)
		if err != nil {
			log.Fatal(err)
		}
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, grpcHealth)
		log.Printf("serving grpc health on :%s", gp)
		go func() { log.Fatal(srv.Serve(l)) }()
	}
	srv := &http.Server{Addr: ":" + port, Handler: logged}
	if d, err := time.ParseDuration(os.Getenv("SHUTDOWN_DELAY")); err == nil {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			log.Printf("SIGTERM: serving %v more", d)
			time.Sleep(d)
			_ = srv.Shutdown(context.Background())
			os.Exit(0)
		}()
	}
	log.Printf("serving on :%s", port)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	select {} // the SIGTERM handler exits once requests in flight are done
}

// dial sends payload to addr over network and copies the answer to
// stdout.
func dial(network, addr, payload string) error {
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, payload); err != nil {
		return err
	}
	var answer []byte
	buf := make([]byte, 4096)
	for {
		var n int
		n, err = c.Read(buf)
		answer = append(answer, buf[:n]...)
		// A datagram is the whole answer; a stream ends when the server
		// closes it (or at the deadline).
		if err != nil || network == "udp" {
			break
		}
	}
	if len(answer) == 0 {
		return fmt.Errorf("no answer from %s %s: %v", network, addr, err)
	}
	_, _ = os.Stdout.Write(answer)
	return nil
}
