package redact

import (
	"io"
	"strings"
)

// Writer redacts a stream (a log follow) on its way to another writer. A
// value split across two writes is still replaced: the Writer holds back the
// end of what it was given while that could be the start of a value — at
// most the longest text to replace less one byte, usually nothing — and
// writes it with the next write or on Close. One Writer per stream; it is not
// safe for concurrent use.
type Writer struct {
	r    *Redactor
	w    io.Writer
	held []byte
}

var _ io.WriteCloser = (*Writer)(nil)

// Writer returns a Writer that redacts what it is given and writes it to w.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// Write redacts p and writes to the underlying writer all of it that no
// later write can change. It returns len(p), or 0 and the underlying
// writer's error.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.emit(append(w.held, p...), false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what the Writer held back: the stream has ended. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	return w.emit(w.held, true)
}

func (w *Writer) emit(pending []byte, final bool) error {
	if w.r == nil || (w.r.maxLen == 0 && !w.r.withhold) {
		_, err := w.w.Write(pending)
		w.held = w.held[:0]
		return err
	}
	if w.r.withhold {
		w.held = w.held[:0]
		return nil
	}
	var b strings.Builder
	n := w.r.scan(&b, string(pending), final)
	w.held = append(w.held[:0], pending[n:]...)
	if b.Len() == 0 {
		return nil
	}
	_, err := io.WriteString(w.w, b.String())
	return err
}
