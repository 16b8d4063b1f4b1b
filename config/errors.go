package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem of a checkout.
type Error struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Service string `json:"service,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// Error formats as `file:line: service: message`, leaving out what is unknown.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Service != "" {
		b.WriteString(e.Service)
		b.WriteString(": ")
	}
	if e.Key != "" && !strings.Contains(e.Message, e.Key) {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem of a checkout. A nil Errors means the checkout is valid.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortErrors orders errors by file, line and message so output is stable.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Message < b.Message
	})
}

// errorSink collects the errors of one file.
type errorSink struct {
	file  string
	lines *lineIndex
	errs  *Errors
}

// service records an error about key of svc (key may be empty).
func (s errorSink) service(svc *Service, key, format string, args ...any) {
	name := svc.Name
	if name == "" {
		name = fmt.Sprintf("service #%d", svc.index+1)
	}
	line := s.lines.find("service", svc.index, key)
	if line == 0 {
		line = svc.Line
	}
	s.append(Error{File: s.file, Line: line, Service: name, Key: key, Message: fmt.Sprintf(format, args...)})
}

// lineOf is the line of svc's key whose line holds needle (a mount's
// source), else the key's line, else the service's.
func (s errorSink) lineOf(svc *Service, key, needle string) int {
	if n := s.lines.findText("service", svc.index, needle); n > 0 {
		return n
	}
	if n := s.lines.find("service", svc.index, key); n > 0 {
		return n
	}
	return svc.Line
}

// mount records an error about mount m of svc, at the line that names its
// source.
func (s errorSink) mount(svc *Service, m Mount, format string, args ...any) {
	name := svc.Name
	if name == "" {
		name = fmt.Sprintf("service #%d", svc.index+1)
	}
	s.append(Error{File: s.file, Line: s.lineOf(svc, "mounts", m.Source), Service: name, Key: "mounts", Message: fmt.Sprintf(format, args...)})
}

// at records an error about key of element index of an array table of the
// file ("" and -1 for the top level).
func (s errorSink) at(table string, index int, key, format string, args ...any) {
	line := s.lines.find(table, index, key)
	if line == 0 {
		line = s.lines.blockStart(table, index)
	}
	s.append(Error{File: s.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (s errorSink) append(e Error) { *s.errs = append(*s.errs, e) }
