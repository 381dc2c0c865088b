# gofer: one image for the front end (`gofer serve --worker=false`) and the workers (`gofer worker`).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/gofer ./cmd/gofer

# The runtime keeps the Go toolchain: gofer takes its defaults (GOPROXY, GOSUMDB, ...) from
# `go env`, and fetches private modules from VCS with the go command and git.
FROM golang:1.26-bookworm
COPY --from=build /out/gofer /usr/local/bin/gofer
ENV GOFER_LISTEN=0.0.0.0:3000 GOFER_DATA_DIR=/data
VOLUME /data
EXPOSE 3000
ENTRYPOINT ["gofer"]
CMD ["serve"]
