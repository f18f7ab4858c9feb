// Package deploy holds difyload's deployment files and the tests that keep them honest: the
// Dockerfile at the repository root, deploy/compose (a whole fleet on one Docker engine) and
// deploy/kubernetes (a kustomize base, a component for Python workers, an overlay for the
// mock). The package has no code of its own.
//
// The manifest tests always run and need nothing but Go: every Kubernetes manifest decodes
// strictly (unknown fields are errors) into the Kubernetes API types, and the invariants
// hold (ports match the worker's flags, Secret keys exist, the ConfigMap holds the real
// locustfile.py, ...). After editing ../locustfile.py, regenerate its ConfigMap with
//
//	DIFYLOAD_UPDATE_MANIFESTS=1 go test ./deploy/ -run TestLocustfileConfigMap
//
// The Docker tests build the image, run the compose fleet against Locust 2.46.x and 2.12.1
// masters and break it (a worker added, a worker killed, a network cut, a master restart).
// They need a Docker engine (skipped without one, or with -short, or with
// DIFYLOAD_DOCKER_TESTS=0) and seed its base images with ../scripts/images.sh (root):
//
//	go test -race -tags goczmq ./deploy/
package deploy
