package sitedata_test

import (
	"context"
	"log"

	"github.com/cgibox/cgibox/sandbox"
	"github.com/cgibox/cgibox/sitedata"
)

// A site with a 64 MiB quota whose scripts run in a user namespace of
// their own: the volume's root belongs to the host id of the site's nobody,
// and the job mounts the volume at /data.
func ExampleOpen() {
	ctx := context.Background()
	users := sandbox.SiteUsers("alice")
	v, err := sitedata.Open(ctx, sitedata.Options{
		Dir:   "/srv/alice/data",
		Quota: 64 << 20,
		UID:   users.Nobody,
		GID:   users.Nobody,
	})
	if err != nil {
		log.Fatal(err) // names the path and the fix
	}
	defer v.Close()

	job := sandbox.Job{DataDir: v.Dir(), Users: &users}
	_ = job // run it with a sandbox.Manager

	used, size, err := v.Usage()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("alice: %d of %d bytes used", used, size)
}
