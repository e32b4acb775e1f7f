package main

import (
	"fmt"

	elt "github.com/elt-dev/elt"
	"github.com/elt-dev/elt/project"
)

// InitCmd is elt init.
type InitCmd struct {
	Dir string `arg:"" placeholder:"DIR" help:"Folder to write the project into (created if missing; must not hold an elt.yaml)."`
}

// Help is the long help of elt init.
func (c *InitCmd) Help() string {
	return `Writes a complete, working project: the usage-analytics model of the demo export API (cmd/elt-demo-api),
each part commented:

  elt.yaml       sources (the demo API), the project's schemas, and what tenants may read (tenants:)
  migrations/    the model's tables, partitioned by customer where tenants read them
  views/         a materialized view the migrations include
  sql/           transforms, data checks, mart steps and the tenant report queries
  README.md      what each part is for and how to change it

Then, with ELT_PROJECT=DIR (or from inside DIR): elt migrate, elt extract, elt refresh, elt tenant add.
docs/adopting.md (in the elt repository) walks from "I have an API" to "my customers see their dashboards".`
}

// Run writes the project.
func (c *InitCmd) Run() error {
	files, err := project.Init(c.Dir, elt.DefaultProject, elt.DefaultProjectReadme)
	if err != nil {
		return err
	}
	fmt.Printf("wrote a project of %d files to %s\n", len(files), c.Dir)
	fmt.Printf("next: export ELT_PROJECT=%s, then elt migrate, elt extract, elt refresh, elt tenant add CUSTOMER\n", c.Dir)
	return nil
}
