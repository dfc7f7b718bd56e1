// Package deploy holds how to run cgibox elsewhere than from a clone:
// kubernetes/ has the manifests that run one cgibox on every node of a
// cluster against that node's containerd. The package has no code of its
// own; its tests decode those files the way the API server would and hold
// them to what cgibox needs of them, so that a manifest that would be
// refused, or that would run a cgibox unable to serve, fails here first.
package deploy
