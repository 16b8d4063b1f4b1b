// Package githubtest is an HTTP test server speaking the part of GitHub's
// REST API orca-sync uses (commit statuses, issue comments, pull request
// listing). It records every call so tests can check the exact requests.
package githubtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
)

// Call is one request the server received.
type Call struct {
	Method, Path, Query, Auth string
	Body                      map[string]any
}

// Comment is a stored issue comment.
type Comment struct {
	ID     int64
	Number int
	Body   string
}

// PR is a pull request the listing returns.
type PR struct {
	Number  int
	Base    string
	HeadSHA string
}

// Server is the fake API. Its fields are guarded by its methods.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	calls    []Call
	comments []Comment
	nextID   int64
	prs      []PR
}

// New starts a server; close it with Close.
func New() *Server {
	s := &Server{nextID: 1000}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /repos/{o}/{r}/statuses/{sha}", s.record(func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		reply(w, http.StatusCreated, body)
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/issues/{n}/comments", s.record(func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		var out []map[string]any
		for _, c := range s.comments {
			if c.Number == n {
				out = append(out, map[string]any{"id": c.ID, "body": c.Body})
			}
		}
		reply(w, http.StatusOK, out)
	}))
	mux.HandleFunc("POST /repos/{o}/{r}/issues/{n}/comments", s.record(func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		s.nextID++
		c := Comment{ID: s.nextID, Number: n, Body: fmt.Sprint(body["body"])}
		s.comments = append(s.comments, c)
		reply(w, http.StatusCreated, map[string]any{"id": c.ID, "body": c.Body})
	}))
	mux.HandleFunc("PATCH /repos/{o}/{r}/issues/comments/{id}", s.record(func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		for i := range s.comments {
			if s.comments[i].ID == id {
				s.comments[i].Body = fmt.Sprint(body["body"])
				reply(w, http.StatusOK, map[string]any{"id": id, "body": s.comments[i].Body})
				return
			}
		}
		reply(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}))
	mux.HandleFunc("GET /repos/{o}/{r}/pulls", s.record(func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		var out []map[string]any
		for _, p := range s.prs {
			if base := r.URL.Query().Get("base"); base == "" || base == p.Base {
				out = append(out, map[string]any{"number": p.Number, "state": "open",
					"base": map[string]any{"ref": p.Base}, "head": map[string]any{"sha": p.HeadSHA}})
			}
		}
		reply(w, http.StatusOK, out)
	}))
	mux.HandleFunc("/", s.record(func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		reply(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}))
	s.Server = httptest.NewServer(mux)
	return s
}

// record logs the call, decodes a JSON body, and runs h under the lock.
func (s *Server) record(h func(http.ResponseWriter, *http.Request, map[string]any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if len(raw) > 0 {
			_ = json.Unmarshal(raw, &body)
		}
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Body: body})
		h(w, r, body)
		s.mu.Unlock()
	}
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// APIURL is the base URL to give as [github] api_url.
func (s *Server) APIURL() string { return s.URL + "/" }

// Calls returns every call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Statuses returns the status calls for sha with the given context, in order.
func (s *Server) Statuses(sha, context string) []map[string]any {
	var out []map[string]any
	for _, c := range s.Calls() {
		if c.Method == http.MethodPost && len(c.Path) > len(sha) && c.Path[len(c.Path)-len(sha):] == sha && c.Body["context"] == context {
			out = append(out, c.Body)
		}
	}
	return out
}

// Comments returns the stored comments of PR number.
func (s *Server) Comments(number int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Number == number {
			out = append(out, c)
		}
	}
	return out
}

// SetPRs replaces the open pull requests.
func (s *Server) SetPRs(prs ...PR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs = prs
}

// AddComment stores a comment someone else wrote on PR number.
func (s *Server) AddComment(number int, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.comments = append(s.comments, Comment{ID: s.nextID, Number: number, Body: body})
	return s.nextID
}
