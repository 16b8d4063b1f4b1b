# orca-sync as an image (docs/guides/installing.md). There is no base image to
# pull: the static binary is built outside Docker, next to a copy of the host's
# CA bundle (go-git needs no git binary, local remotes included), and both go
# into an empty image:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o orca-sync ./cmd/orca-sync
#   cp /etc/ssl/certs/ca-certificates.crt .
#   docker build -t orca-sync .
#
# Run it with the Docker socket, the data dir mounted at the same path as on
# the host (the engine resolves bind mounts of files from the checkout on the
# host) and the age key as a file; see the README for the docker run line.
FROM scratch
COPY orca-sync /orca-sync
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
EXPOSE 6880 80 443
ENTRYPOINT ["/orca-sync", "serve"]
