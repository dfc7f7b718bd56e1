//go:build !linux

package sitedata

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("sitedata: data volumes need Linux")

// Open fails: data volumes need Linux.
func Open(ctx context.Context, o Options) (*Volume, error) { return nil, errNotLinux }

// Usage fails: data volumes need Linux.
func (v *Volume) Usage() (used, size int64, err error) { return 0, 0, errNotLinux }

// Close does nothing.
func (v *Volume) Close() error { return nil }
