package sandbox

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
)

// ImageInfo describes one image in the namespace.
type ImageInfo struct {
	Name    string
	Size    int64 // bytes of content (compressed layers, config, manifest)
	Created time.Time
	Labels  map[string]string // the image record's labels
}

// HasImage reports whether ref exists in the namespace.
func (m *Manager) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := m.client.ImageService().Get(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, classify(fmt.Errorf("image %s: %w", ref, err))
	}
}

// Import reads a docker-save or OCI archive, stores its images and unpacks
// them into the snapshotter so that containers can use them at once. It
// returns the names of the imported images.
func (m *Manager) Import(ctx context.Context, archive io.Reader) ([]string, error) {
	imgs, err := m.client.Import(ctx, archive)
	if err != nil {
		return nil, classify(fmt.Errorf("import: %w", err))
	}
	names := make([]string, 0, len(imgs))
	for _, img := range imgs {
		if err := containerd.NewImage(m.client, img).Unpack(ctx, Snapshotter); err != nil {
			return names, classify(fmt.Errorf("unpack %s: %w", img.Name, err))
		}
		names = append(names, img.Name)
		m.log.Info("image imported", "image", img.Name, "digest", img.Target.Digest.String())
	}
	return names, nil
}

// RemoveImage deletes ref; its content and snapshots are garbage-collected.
func (m *Manager) RemoveImage(ctx context.Context, ref string) error {
	if err := m.client.ImageService().Delete(ctx, ref, images.SynchronousDelete()); err != nil {
		return classify(fmt.Errorf("remove image %s: %w", ref, err))
	}
	return nil
}

// ListImages lists the images in the namespace.
func (m *Manager) ListImages(ctx context.Context) ([]ImageInfo, error) {
	imgs, err := m.client.ImageService().List(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("list images: %w", err))
	}
	out := make([]ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		ci := containerd.NewImage(m.client, img)
		size, err := ci.Size(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("image %s size: %w", img.Name, err))
		}
		// The image config's labels (for cgibox images: the recipe), then
		// the record's own labels.
		labels := map[string]string{}
		if spec, err := ci.Spec(ctx); err == nil {
			maps.Copy(labels, spec.Config.Labels)
		}
		maps.Copy(labels, img.Labels)
		out = append(out, ImageInfo{Name: img.Name, Size: size, Created: img.CreatedAt, Labels: labels})
	}
	return out, nil
}
