// Package bmcsim is a Redfish BMC simulator for tests and the demo.
//
// It serves a DMTF mockup tree (an index.json per resource, as a real BMC
// serves it under /redfish/v1/...) and adds what a static tree cannot do:
//
//   - one ComputerSystem per simulated node, cloned from the mockup's system
//     under an ID of the caller's choosing, with PowerState kept in memory;
//   - POST …/Actions/ComputerSystem.Reset changes PowerState with configurable
//     delays (see [Options.BootTime], [Options.ShutdownTime]);
//   - HTTP basic auth and Redfish sessions (X-Auth-Token), as far as gofish
//     needs them;
//   - fault injection per system ([Faults]): an HTTP error status on reset,
//     with or without applying it; a reset that is applied but whose answer
//     hangs past the client's timeout; graceful requests ignored (a hung OS);
//     advertised types refused; PowerCycle added to or types removed from
//     ResetType@Redfish.AllowableValues; the allowed types advertised through
//     an ActionInfo resource instead;
//   - an [Options.OnPower] hook for every PowerState change, so a test or the
//     demo can make the matching Kubernetes node go NotReady and come back;
//   - a record of every reset request per system ([Sim.Resets]), for
//     "exactly one effective reset" assertions.
//
// Power model: the simulator's PowerState "On" marks the moment the simulated
// OS is up. ForceRestart and PowerCycle go Off at once and On after BootTime
// (PoweringOn in between with [Options.PoweringOn]); GracefulRestart goes
// PoweringOff, Off after ShutdownTime, On after a further BootTime; On/ForceOn
// from Off go PoweringOn, then On after BootTime;
// ForceOff is immediate and cancels a pending power-on; GracefulShutdown goes PoweringOff, then Off after
// ShutdownTime; PushPowerButton acts as GracefulShutdown when on and as On when
// off; Nmi changes nothing. A new reset supersedes the pending transitions of
// an earlier one. [Faults.BootTime] and [Faults.ShutdownTime] make one
// system slower (or quicker) than the others.
//
// BootProgress model: a running system reports BootProgress.LastState
// OSRunning; Off reports None. A boot walks from power-on through
// PrimaryProcessorInitializationStarted, SystemHardwareInitializationComplete
// (a quarter of BootTime), OSBootStarted (half) to OSRunning (BootTime, when
// PowerState turns On, with LastBootTimeSeconds), LastStateTime set at each
// change. A hung OS (IgnoreGraceful) changes nothing: OSRunning with the
// LastStateTime of its last boot (the simulator's start). [Faults.NoBootProgress]
// serves a firmware that reports none.
package bmcsim
