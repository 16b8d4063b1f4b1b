package source

import (
	"fmt"

	"github.com/go-git/go-git/v5"
)

// Revision returns the commit SHA checked out in the git work tree that
// contains dir, or "" when dir is not in a git repository.
func Revision(dir string) (string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err == git.ErrRepositoryNotExists {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("read HEAD of %s: %w", dir, err)
	}
	return head.Hash().String(), nil
}
