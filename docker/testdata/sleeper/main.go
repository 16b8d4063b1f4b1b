// Command sleeper is the process of the apply package's Docker test image: a
// static binary in a FROM scratch image (no shell, no other file).
//
//	sleeper              serve 200 "ok" on :8080 until SIGTERM
//	sleeper exit N       exit with code N at once (for Exec)
//	sleeper exists PATH  exit 0 if PATH exists, 1 if not
//	sleeper write PATH   create PATH holding "hello", exit 0 (2 on error)
//	sleeper resolve NAME exit 0 if NAME resolves (Docker's DNS), 1 if not
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(command(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: ":8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	})}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	fmt.Printf("sleeper listening on :8080 (GREETING=%s)\n", os.Getenv("GREETING"))
	fmt.Fprintln(os.Stderr, "sleeper stderr line")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("sleeper got SIGTERM, bye")
}

func command(args []string) int {
	switch {
	case args[0] == "exit" && len(args) == 2:
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return 2
		}
		return n
	case args[0] == "exists" && len(args) == 2:
		if _, err := os.Stat(args[1]); err != nil {
			return 1
		}
		return 0
	case args[0] == "write" && len(args) == 2:
		if err := os.WriteFile(args[1], []byte("hello"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		return 0
	case args[0] == "resolve" && len(args) == 2:
		if _, err := net.LookupHost(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "sleeper: unknown command %q\n", args)
	return 2
}
