// Package runbooks defines runbooks — ordered lists of named, idempotent
// steps — the registry that names them, and the executor that runs them.
//
// The executor saves a run's state (next step, the node's prior state, a
// timeline of steps with times and outcomes) after every step, so a run
// claimed by another replica continues where the last one stopped. Each
// step checks before it acts ("already cordoned → done"), which makes a
// step that was interrupted after acting but before saving safe to repeat.
//
// The package imports no SDK: it defines the small interfaces it needs
// (NodeOps, Store) and adapters in other packages satisfy them.
package runbooks
