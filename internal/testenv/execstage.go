package testenv

// execStage is a kwok Stage of node-healer's own: it plays the kubelet
// for node-exec pods (label app.kubernetes.io/managed-by=node-healer),
// finishing them with exit code 0 shortly after they run — except the
// "reboot" action, whose pod a real node never reports finished (the node
// goes down under it). A node that really reboots is simulated through
// the BMC simulator's power hook instead.
//
// Capture pods (label node-healer.io/capture) have a stage of their own:
// they finish with a termination message standing for the command's
// output, "kwok node-exec pod NAME ran: COMMAND LINE", so a test controls
// the output's size through the command line it configures.
const execStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-healer-exec-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchLabels:
      app.kubernetes.io/managed-by: node-healer
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.labels["node-healer.io/action"]'
      operator: 'NotIn'
      values: ['reboot']
    - key: '.metadata.labels["node-healer.io/capture"]'
      operator: 'DoesNotExist'
  delay:
    durationMilliseconds: 300
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-healer-capture-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchLabels:
      app.kubernetes.io/managed-by: node-healer
      node-healer.io/capture: 'true'
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
  delay:
    durationMilliseconds: 300
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $name := .metadata.name }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            message: {{ printf "kwok node-exec pod %s ran: %s" $name (last $item.command) | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
`
