package source

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orca-sync/orca-sync/internal/gittest"
)

// sshServer serves git-upload-pack over SSH on 127.0.0.1, accepting one
// client key. It has two host keys, like most servers.
type sshServer struct {
	addr     string
	hostKeys []ssh.PublicKey // ed25519, ecdsa
}

func newSSHServer(t testing.TB, clientKey ssh.PublicKey) *sshServer {
	t.Helper()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	srv := &sshServer{}
	for _, k := range []any{edKey, ecKey} {
		signer, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		cfg.AddHostKey(signer)
		srv.hostKeys = append(srv.hostKeys, signer.PublicKey())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveSSH(conn, cfg) })
		}
	})
	srv.addr = l.Addr().String()
	return srv
}

func serveSSH(conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, chReqs)
	}
}

func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(false, nil)
			continue
		}
		command := string(req.Payload[4:])
		prog, arg, _ := strings.Cut(command, " ")
		if prog != "git-upload-pack" {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		cmd := exec.Command(prog, strings.Trim(arg, "'"))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.CloseWrite()
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// writeKey writes a new ed25519 private key (OpenSSH format) and returns
// its file and public key.
func writeKey(t testing.TB) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return file, sshPub
}

func writeKnownHosts(t testing.TB, addr string, key ssh.PublicKey) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestSyncSSH(t *testing.T) {
	rem := gittest.NewRepo(t)
	rem.WriteFile("a.txt", "over ssh\n")
	sha := rem.CommitPush("ssh")
	keyFile, clientPub := writeKey(t)
	srv := newSSHServer(t, clientPub)
	repoURL := fmt.Sprintf("ssh://git@%s%s", srv.addr, rem.BarePath())
	knownHosts := writeKnownHosts(t, srv.addr, srv.hostKeys[0])
	_, otherHostKey := writeKey(t)
	otherKeyFile, _ := writeKey(t)

	ok := func(t *testing.T, opts Options) {
		r := newRepo(t, opts)
		if c := mustSync(t, r); c.SHA != sha {
			t.Errorf("Sync = %s, want %s", c.SHA, sha)
		}
		if c := mustSync(t, r); c.SHA != sha {
			t.Errorf("second Sync = %s, want %s", c.SHA, sha)
		}
	}
	fails := func(t *testing.T, opts Options, want string) {
		err := syncErr(t, newRepo(t, opts))
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "fetch "+repoURL+" main: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want the URL and %q", err, want)
		}
	}
	for _, hostKey := range srv.hostKeys {
		// Whichever of its keys known_hosts lists, the server is accepted.
		t.Run("known host "+hostKey.Type(), func(t *testing.T) {
			kh := writeKnownHosts(t, srv.addr, hostKey)
			ok(t, Options{URL: repoURL, SSHKeyFile: keyFile, KnownHostsFile: kh})
		})
	}
	t.Run("unknown host", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, empty, "")
		fails(t, Options{URL: repoURL, SSHKeyFile: keyFile, KnownHostsFile: empty}, "key is unknown")
	})
	t.Run("changed host key", func(t *testing.T) {
		other := writeKnownHosts(t, srv.addr, otherHostKey)
		fails(t, Options{URL: repoURL, SSHKeyFile: keyFile, KnownHostsFile: other}, "key mismatch")
	})
	t.Run("default known_hosts is missing", func(t *testing.T) {
		t.Setenv("SSH_KNOWN_HOSTS", filepath.Join(t.TempDir(), "none"))
		fails(t, Options{URL: repoURL, SSHKeyFile: keyFile}, "known_hosts")
	})
	t.Run("insecure ignore host key", func(t *testing.T) {
		ok(t, Options{URL: repoURL, SSHKeyFile: keyFile, InsecureIgnoreHostKey: true})
	})
	t.Run("wrong client key", func(t *testing.T) {
		fails(t, Options{URL: repoURL, SSHKeyFile: otherKeyFile, KnownHostsFile: knownHosts}, "unable to authenticate")
	})
	t.Run("no key and no agent", func(t *testing.T) {
		fails(t, Options{URL: repoURL, KnownHostsFile: knownHosts}, "no ssh key file set and no ssh agent")
	})
}
