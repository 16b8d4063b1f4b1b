package source

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// auth is the transport credential for one fetch: basic auth for http(s),
// a key (or the SSH agent) with host key checking for ssh, none otherwise.
// It reads the key and known_hosts files, so a changed file is picked up by
// the next fetch.
func (r *Repo) auth() (transport.AuthMethod, error) {
	switch r.protocol {
	case "http", "https":
		if r.username == "" && r.password == "" {
			return nil, nil
		}
		return &githttp.BasicAuth{Username: r.username, Password: r.password}, nil
	case "ssh":
		return r.sshAuth()
	}
	return nil, nil
}

func (r *Repo) sshAuth() (transport.AuthMethod, error) {
	hostKeys, err := r.hostKeys()
	if err != nil {
		return nil, err
	}
	if r.opts.SSHKeyFile != "" {
		keys, err := gitssh.NewPublicKeysFromFile(r.user, r.opts.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("read ssh key %s: %w", r.opts.SSHKeyFile, err)
		}
		keys.HostKeyCallbackHelper = hostKeys
		return keys, nil
	}
	agent, err := gitssh.NewSSHAgentAuth(r.user)
	if err != nil {
		return nil, fmt.Errorf("no ssh key file set and no ssh agent: %w", err)
	}
	agent.HostKeyCallbackHelper = hostKeys
	return agent, nil
}

// hostKeys checks the server's host key against known_hosts (and offers the
// key algorithms known_hosts has for the host, so a host listed with only an
// ed25519 key is not refused for presenting another type first), or accepts
// any key when InsecureIgnoreHostKey is set.
func (r *Repo) hostKeys() (gitssh.HostKeyCallbackHelper, error) {
	if r.opts.InsecureIgnoreHostKey {
		return gitssh.HostKeyCallbackHelper{HostKeyCallback: ssh.InsecureIgnoreHostKey()}, nil
	}
	var files []string
	if r.opts.KnownHostsFile != "" {
		files = []string{r.opts.KnownHostsFile}
	}
	db, err := gitssh.NewKnownHostsDb(files...)
	if err != nil {
		return gitssh.HostKeyCallbackHelper{}, fmt.Errorf("load ssh known hosts: %w", err)
	}
	return gitssh.HostKeyCallbackHelper{
		HostKeyCallback:   db.HostKeyCallback(),
		HostKeyAlgorithms: db.HostKeyAlgorithms(r.host),
	}, nil
}
