// Package elt carries the default project: the usage-analytics model of the demo export API (elt.yaml,
// migrations/, views/, sql/ and dashboards/ at the root of this repository), which elt init writes into a new folder,
// with docs/project-readme.md as its README.md.
//
// No command reads a model from the binary: every command reads the project folder at run time. This copy
// exists only so that elt init can write a complete, working project on a machine that has nothing but the
// binary.
package elt

import "embed"

// DefaultProject is the default project's files, by their path in the repository.
//
//go:embed elt.yaml migrations views sql dashboards docs/project-readme.md
var DefaultProject embed.FS

// DefaultProjectReadme is the file of DefaultProject that elt init writes as the project's README.md.
const DefaultProjectReadme = "docs/project-readme.md"
