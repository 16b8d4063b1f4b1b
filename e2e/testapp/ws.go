package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	wsGUID       = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	wsMaxMessage = 1 << 20 // 1 MiB per (reassembled) message

	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	closeProtocolError = 1002
	closeInvalidData   = 1007
	closeTooBig        = 1009
)

var (
	errWSProtocol = errors.New("websocket protocol error")
	errWSTooBig   = errors.New("websocket message too big")
)

func wsAcceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

func (a *app) ws(w http.ResponseWriter, r *http.Request) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "unsupported websocket version", http.StatusUpgradeRequired)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		http.Error(w, "bad Sec-WebSocket-Key", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAcceptKey(key) + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		return
	}
	wsEcho(rw.Reader, rw.Writer)
}

// wsEcho echoes every text/binary message back as one unfragmented frame,
// answers pings, and returns after the close handshake or an error.
func wsEcho(r *bufio.Reader, w *bufio.Writer) {
	var (
		msg   []byte
		msgOp byte
		inMsg bool
	)
	for {
		fin, op, payload, err := wsReadFrame(r, true, wsMaxMessage-len(msg))
		switch {
		case errors.Is(err, errWSTooBig):
			wsCloseWith(w, closeTooBig)
			return
		case errors.Is(err, errWSProtocol):
			wsCloseWith(w, closeProtocolError)
			return
		case err != nil:
			return
		}
		if op >= opClose { // control frame
			if !wsControl(w, fin, op, payload) {
				return
			}
			continue
		}
		switch {
		case op == opContinuation && inMsg:
			msg = append(msg, payload...)
		case (op == opText || op == opBinary) && !inMsg:
			msgOp, msg, inMsg = op, payload, true
		default: // a continuation outside a message, a new one inside, or an unknown opcode
			wsCloseWith(w, closeProtocolError)
			return
		}
		if !fin {
			continue
		}
		if msgOp == opText && !utf8.Valid(msg) {
			wsCloseWith(w, closeInvalidData)
			return
		}
		if wsWriteFrame(w, msgOp, msg, nil) != nil {
			return
		}
		msg, inMsg = nil, false
	}
}

// wsCloseWith sends a close frame with code.
func wsCloseWith(w *bufio.Writer, code uint16) {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], code)
	_ = wsWriteFrame(w, opClose, p[:], nil)
}

// wsControl answers one control frame; false ends the connection.
func wsControl(w *bufio.Writer, fin bool, op byte, payload []byte) bool {
	if !fin || len(payload) > 125 {
		wsCloseWith(w, closeProtocolError)
		return false
	}
	switch op {
	case opClose:
		switch {
		case len(payload) == 0:
			_ = wsWriteFrame(w, opClose, nil, nil)
		case len(payload) == 1:
			wsCloseWith(w, closeProtocolError)
		default:
			_ = wsWriteFrame(w, opClose, payload[:2], nil)
		}
		return false
	case opPing:
		return wsWriteFrame(w, opPong, payload, nil) == nil
	case opPong:
		return true
	}
	wsCloseWith(w, closeProtocolError)
	return false
}

// wsReadFrame reads one frame. With requireMask (server side) an unmasked
// frame is a protocol error. Payloads over max bytes give errWSTooBig.
func wsReadFrame(r io.Reader, requireMask bool, max int) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin = h[0]&0x80 != 0
	op = h[0] & 0x0F
	if h[0]&0x70 != 0 { // RSV1-3: no extension negotiated
		return fin, op, nil, errWSProtocol
	}
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
		if n>>63 != 0 {
			return fin, op, nil, errWSProtocol
		}
	}
	if requireMask && !masked {
		return fin, op, nil, errWSProtocol
	}
	if n > uint64(max) {
		return fin, op, nil, errWSTooBig
	}
	var key [4]byte
	if masked {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return fin, op, payload, nil
}

// wsWriteFrame writes one final frame; mask is nil for server frames (clients
// must pass a key).
func wsWriteFrame(w *bufio.Writer, op byte, payload []byte, mask *[4]byte) error {
	w.WriteByte(0x80 | op)
	var maskBit byte
	if mask != nil {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		w.WriteByte(maskBit | byte(n))
	case n <= 0xFFFF:
		w.WriteByte(maskBit | 126)
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], uint16(n))
		w.Write(b[:])
	default:
		w.WriteByte(maskBit | 127)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		w.Write(b[:])
	}
	if mask != nil {
		w.Write(mask[:])
		masked := make([]byte, len(payload))
		for i := range payload {
			masked[i] = payload[i] ^ mask[i%4]
		}
		payload = masked
	}
	w.Write(payload)
	return w.Flush()
}
