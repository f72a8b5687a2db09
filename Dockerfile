# Build the operator as a static binary, then run it on a distroless image as non-root.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY main.go ./
COPY api/ api/
COPY connectors/ connectors/
COPY controllers/ controllers/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o roster .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/roster /roster
USER 65532:65532
ENTRYPOINT ["/roster"]
