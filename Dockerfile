# Operator image. Build: make image (needs a container engine).
#
# The payload stage runs make payload's recipe (hack/payload/build): every
# Windows binary from its pinned Go module, reproducibly, into
# /payload/<kubernetes-version>/ with its manifest.json. The operator's
# --payload-dir (/payload) takes that directory of versioned payloads.
# Cold, the payload stage takes about 20 minutes on 2 cores.

FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY pkg/ pkg/
RUN GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/openwmco/wmco/pkg/version.Version=${VERSION}" \
      -o /out/operator ./cmd/operator

FROM build AS payload
ARG VERSION=dev
ARG K8S_VERSION=v1.37.2
COPY hack/payload/ hack/payload/
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go run ./hack/payload/build -k8s-version "${K8S_VERSION}" -version "${VERSION}" \
      -out "/payload/${K8S_VERSION}"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/operator /operator
COPY --from=payload /payload/ /payload/
USER 65532:65532
ENTRYPOINT ["/operator"]
