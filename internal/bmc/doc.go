// Package bmc reads and changes nodes' power through their BMCs over
// Redfish (gofish) or IPMI v2.0 over LAN (RMCP+, "lanplus").
//
// # IPMI
//
// An inventory entry with protocol: ipmi names host, port (623), privilege
// (operator or administrator), cipher_suite (17, or 3; omitted: 17 if the
// BMC offers it, else 3) and interface: lanplus. [IPMIClient] opens one
// RMCP+ session per operation and maps a Kind to Chassis Control:
//
//	Soft  chassis power soft, wait for Off, then chassis power on (IPMI has no graceful restart)
//	Hard  chassis power cycle; refused (a completion code, e.g. while off): power off, wait for Off, power on
//	Off   chassis power off   (nothing if already off)
//	On    chassis power on    (nothing if already on)
//
// A control is never resent: it goes out in a session opened with no
// datagram retries, and a lost answer yields a [*ResetError] (Maybe set)
// after the power state (Get Chassis Status) is read again. Only an answer
// with a completion code counts as a refusal.
//
// The client library is github.com/bougou/go-ipmi: pure Go (no cgo, no
// ipmitool binary in the image), maintained with frequent releases, with
// RMCP+ cipher suites 3 and 17 and a per-request context; its retries are
// configurable, which lets a control be sent exactly once. The other Go
// IPMI libraries either wrap ipmitool, lack RMCP+ SHA-256 suites, or are
// unmaintained.
//
// # Where a node's BMC is
//
// An [Inventory] file maps node names to an endpoint, an optional system
// (Id or path; omitted: the BMC's only system), a username and a
// password_file; TLS verification is on unless insecure_skip_verify is set,
// and ca_file adds a CA. A node missing from the file may name its BMC in
// the [AnnotationEndpoint] annotation; that endpoint gets the default
// credentials, so it is trusted only if its host matches
// annotations.allowed_hosts. Credentials are read from files and held as
// [Secret], which prints, logs and marshals as "<secret>".
//
// # Choosing a reset
//
// A caller asks for a [Kind]; [Plan] maps it to ResetTypes the system
// advertises (ResetType@Redfish.AllowableValues, else its reset ActionInfo):
//
//	Soft  GracefulRestart
//	Hard  PowerCycle | ForceRestart | ForceOff, wait for Off, then On | ForceOn | PushPowerButton
//	Off   ForceOff | GracefulShutdown           (nothing if already Off)
//	On    On | ForceOn | PushPowerButton if Off  (nothing if On or PoweringOn)
//
// A type the system does not advertise is never sent: the call fails with a
// [*NotAllowedError] (errors.Is ErrNotAllowed) naming the allowed values,
// before any request.
//
// # Errors, timeouts and "never two resets for one decision"
//
// Every BMC operation runs under Options.Timeout (default 10 s). A reset
// request is sent once per call: this package never retries it, and gofish
// resends only after a 412 Precondition Failed (an If-Match that did not
// match), which means the first was not applied. If it fails or times out, the client re-reads
// PowerState and returns a [*ResetError] with that state (After) and
// whether the reset may have been applied anyway (Maybe: anything but a 4xx
// answer — a BMC can do the work and still time out or answer 500).
//
// The caller (a runbook step) must therefore treat "sent" as a persisted
// fact, not a retryable action:
//
//  1. Before sending, record durably that a reset is being sent for this
//     decision (the step's run ID + step name make a good decision ID).
//     [Client.ResetOnce] / [Fleet.ResetOnce] do this through a [Journal]
//     after choosing the ResetTypes and before the first request, and
//     refuse (ErrAlreadySent) to send again for a recorded decision. The
//     default [MemJournal] is process-local; runbooks that must survive a
//     crash pass a durable Journal or record the decision in their own saved
//     run state and call Reset only when it was not there.
//  2. After any outcome — success, *ResetError, or ErrAlreadySent on resume
//     — observe instead of resending: [Client.WaitPowerState] and the node's
//     readiness say whether the reset took effect.
//  3. If it did not, that is a new decision (e.g. escalate Soft to Hard, or
//     to a human), with a new ID.
//
// The Hard fallback (ForceOff, then On) is one decision of two requests; the
// second is sent only once PowerState reads Off, and a failure of either
// ends the call.
//
// # Using it from runbooks
//
// [Power] is the interface a runbook needs; internal/runbooks declares its
// own copy (it imports no SDK) and [Fleet] satisfies it. State and Kind are
// plain string types.
//
// # Metrics
//
// [NewMetrics] registers node_healer_bmc_requests_total{protocol,op,result}
// and node_healer_bmc_resets_total{protocol,type} (type: a Redfish
// ResetType, or an IPMI control: soft, cycle, reset, off, on), every
// combination at zero.
package bmc
