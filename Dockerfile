# Operator image. Build: make image (needs a container engine).
# The Windows payload stage (kubelet, kube-proxy, containerd, CNI plugins,
# hybrid-overlay, csi-proxy, windows_exporter, wicd.exe under /payload) is
# added with the payload issue.

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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/operator /operator
USER 65532:65532
ENTRYPOINT ["/operator"]
