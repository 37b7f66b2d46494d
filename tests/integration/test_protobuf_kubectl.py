"""kubectl writes some objects as protobuf (`application/vnd.kubernetes.protobuf`): `kubectl create job
--from=cronjob/…`, `kubectl debug --copy-to`, `kubectl debug node/…`. Whatever such a body holds must be
stored, as JSON's would be: these drive the real kubectl 1.32 and compare what the emulator kept with what
kubectl sent. A field number the emulator's layouts do not know is an unknown field, per fieldValidation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest
from tests.unit.test_protobuf import envelope, msg, object_meta, text, vint

PROTOBUF = "application/vnd.kubernetes.protobuf"

# A CronJob whose job template uses as much of the Job and Pod API as 1.32 accepts.
CRON_JOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: c
spec:
  schedule: "*/5 * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 60
  successfulJobsHistoryLimit: 2
  failedJobsHistoryLimit: 0
  suspend: true
  jobTemplate:
    metadata:
      labels: {team: a}
      annotations: {note: x}
    spec:
      completions: 3
      parallelism: 2
      completionMode: Indexed
      backoffLimitPerIndex: 1
      maxFailedIndexes: 1
      activeDeadlineSeconds: 600
      ttlSecondsAfterFinished: 0
      podReplacementPolicy: Failed
      podFailurePolicy:
        rules:
        - action: FailIndex
          onExitCodes: {containerName: main, operator: In, values: [42, 43]}
        - action: Ignore
          onPodConditions: [{type: DisruptionTarget, status: "True"}]
      successPolicy:
        rules:
        - {succeededIndexes: "0-1", succeededCount: 1}
      template:
        metadata:
          labels: {app: c}
          annotations: {a: b}
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 0
          activeDeadlineSeconds: 300
          automountServiceAccountToken: false
          enableServiceLinks: false
          shareProcessNamespace: true
          hostname: h
          subdomain: sub
          setHostnameAsFQDN: false
          nodeSelector: {kubernetes.io/os: linux}
          imagePullSecrets: [{name: regcred}]
          dnsPolicy: None
          dnsConfig:
            nameservers: [1.1.1.1]
            searches: [example.com]
            options: [{name: ndots, value: "2"}, {name: edns0}]
          hostAliases: [{ip: 10.0.0.1, hostnames: [a.local, b.local]}]
          readinessGates: [{conditionType: example.com/ready}]
          schedulingGates: [{name: example.com/gate}]
          preemptionPolicy: Never
          os: {name: linux}
          securityContext:
            runAsUser: 1000
            runAsGroup: 3000
            runAsNonRoot: true
            fsGroup: 2000
            fsGroupChangePolicy: OnRootMismatch
            supplementalGroups: [4000]
            sysctls: [{name: net.ipv4.ip_local_port_range, value: "1024 65535"}]
            seccompProfile: {type: RuntimeDefault}
            appArmorProfile: {type: RuntimeDefault}
            seLinuxOptions: {level: "s0:c123,c456"}
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
                  matchFields: [{key: metadata.name, operator: NotIn, values: [other]}]
              preferredDuringSchedulingIgnoredDuringExecution:
              - weight: 10
                preference:
                  matchExpressions: [{key: disk, operator: Exists}]
            podAffinity:
              preferredDuringSchedulingIgnoredDuringExecution:
              - weight: 5
                podAffinityTerm:
                  labelSelector: {matchLabels: {app: c}}
                  topologyKey: kubernetes.io/hostname
                  namespaces: [default]
            podAntiAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
              - labelSelector:
                  matchExpressions: [{key: app, operator: In, values: [other]}]
                namespaceSelector: {matchLabels: {team: a}}
                topologyKey: kubernetes.io/hostname
          tolerations:
          - {key: example.com/taint, operator: Equal, value: v, effect: NoSchedule}
          - {key: example.com/evict, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
          topologySpreadConstraints:
          - maxSkew: 1
            topologyKey: kubernetes.io/hostname
            whenUnsatisfiable: ScheduleAnyway
            labelSelector: {matchLabels: {app: c}}
            minDomains: 2
            nodeAffinityPolicy: Honor
            nodeTaintsPolicy: Ignore
            matchLabelKeys: [pod-template-hash]
          volumes:
          - name: cm
            configMap:
              name: cfg
              items: [{key: k, path: p, mode: 256}]
              defaultMode: 292
              optional: true
          - name: sec
            secret: {secretName: s, optional: false, defaultMode: 256}
          - name: scratch
            emptyDir: {medium: Memory, sizeLimit: 64Mi}
          - name: plain
            emptyDir: {}
          - name: host
            hostPath: {path: /var/log, type: Directory}
          - name: proj
            projected:
              defaultMode: 420
              sources:
              - serviceAccountToken: {audience: vault, expirationSeconds: 3600, path: token}
              - configMap: {name: cfg, items: [{key: k, path: k2}]}
              - secret: {name: s}
              - downwardAPI:
                  items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
          - name: down
            downwardAPI:
              items:
              - {path: name, fieldRef: {apiVersion: v1, fieldPath: metadata.name}}
              - path: cpu
                resourceFieldRef: {containerName: main, resource: limits.cpu, divisor: 1m}
          - name: claim
            persistentVolumeClaim: {claimName: data, readOnly: true}
          - name: dev
            persistentVolumeClaim: {claimName: block}
          - name: nfs
            nfs: {server: nfs.example.com, path: /exports, readOnly: true}
          - name: csi
            csi: {driver: csi.example.com, readOnly: true, fsType: ext4, volumeAttributes: {a: b}, nodePublishSecretRef: {name: s}}
          - name: eph
            ephemeral:
              volumeClaimTemplate:
                metadata: {labels: {v: e}}
                spec:
                  accessModes: [ReadWriteOnce]
                  storageClassName: standard
                  resources: {requests: {storage: 1Gi}}
          initContainers:
          - name: sidecar
            image: busybox:1.36
            restartPolicy: Always
            command: [sh, -c, "sleep 3600"]
            startupProbe:
              grpc: {port: 9000, service: health}
              failureThreshold: 30
              periodSeconds: 2
          containers:
          - name: main
            image: busybox:1.36
            imagePullPolicy: IfNotPresent
            command: [sh, -c]
            args: ["echo $A"]
            workingDir: /work
            stdin: true
            stdinOnce: true
            tty: true
            terminationMessagePath: /dev/msg
            terminationMessagePolicy: FallbackToLogsOnError
            ports:
            - {name: http, containerPort: 8080, protocol: TCP}
            - {name: dns, containerPort: 53, protocol: UDP, hostPort: 5353, hostIP: 127.0.0.1}
            env:
            - {name: PLAIN, value: v}
            - name: A
              valueFrom: {configMapKeyRef: {name: cfg, key: a, optional: true}}
            - name: B
              valueFrom: {secretKeyRef: {name: s, key: b, optional: false}}
            - name: NODE
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            - name: MEM
              valueFrom: {resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
            envFrom:
            - {prefix: CM_, configMapRef: {name: cfg, optional: true}}
            - secretRef: {name: s}
            resources:
              requests: {cpu: 100m, memory: 64Mi, ephemeral-storage: 1Gi}
              limits: {cpu: "1", memory: 128Mi}
            volumeMounts:
            - {name: cm, mountPath: /etc/cfg, readOnly: true}
            - {name: sec, mountPath: /etc/sec, readOnly: true, recursiveReadOnly: Enabled}
            - {name: scratch, mountPath: /scratch, subPathExpr: "$(NODE)"}
            - {name: host, mountPath: /host, mountPropagation: HostToContainer}
            - {name: proj, mountPath: /proj}
            - {name: down, mountPath: /down, subPath: x}
            - {name: claim, mountPath: /data}
            - {name: plain, mountPath: /plain}
            - {name: nfs, mountPath: /nfs}
            - {name: csi, mountPath: /csi}
            - {name: eph, mountPath: /eph}
            volumeDevices:
            - {name: dev, devicePath: /dev/xvda}
            livenessProbe:
              exec: {command: [cat, /tmp/healthy]}
              initialDelaySeconds: 5
              timeoutSeconds: 2
              periodSeconds: 7
              successThreshold: 1
              failureThreshold: 4
              terminationGracePeriodSeconds: 10
            readinessProbe:
              httpGet:
                path: /ready
                port: http
                host: 127.0.0.1
                scheme: HTTPS
                httpHeaders: [{name: X-Probe, value: "1"}]
              periodSeconds: 3
            startupProbe:
              tcpSocket: {port: 8080}
              failureThreshold: 20
            lifecycle:
              postStart:
                exec: {command: [sh, -c, "echo started"]}
              preStop:
                sleep: {seconds: 5}
            securityContext:
              privileged: false
              allowPrivilegeEscalation: false
              readOnlyRootFilesystem: true
              runAsNonRoot: true
              runAsUser: 1001
              runAsGroup: 3001
              capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
              seLinuxOptions: {user: u, role: r, type: t, level: "s0"}
              seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
              appArmorProfile: {type: Localhost, localhostProfile: k8s-apparmor}
          - name: web
            image: nginx:1.27
            lifecycle:
              preStop:
                httpGet: {path: /stop, port: 80}
              postStart:
                tcpSocket: {port: 80}
            resources:
              limits: {cpu: 500m}
"""

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec:
  containers:
  - name: app
    image: nginx:1.27
    env:
    - name: CFG
      valueFrom: {configMapKeyRef: {name: cfg, key: a, optional: true}}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MEM
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    readinessProbe:
      httpGet: {path: /healthz, port: 80, httpHeaders: [{name: X-A, value: b}]}
      periodSeconds: 5
      failureThreshold: 7
    livenessProbe:
      tcpSocket: {port: 80}
    resources:
      requests: {cpu: 50m, memory: 32Mi}
      limits: {memory: 64Mi}
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
  volumes:
  - name: data
    emptyDir: {sizeLimit: 1Gi}
"""


def get(kubectl: Kubectl, ns: str, *what: str) -> dict[str, Any]:
    return json.loads(kubectl.out("-n", ns, "get", *what, "-o", "json"))


def test_create_job_from_cronjob_keeps_the_whole_template(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("-n", ns, "apply", "-f", manifest(tmp_path, CRON_JOB))
    kubectl.run("-n", ns, "create", "job", "j", "--from=cronjob/c", "-v=8")  # a protobuf body, fieldValidation=Strict
    template = get(kubectl, ns, "cronjob", "c")["spec"]["jobTemplate"]
    job = get(kubectl, ns, "job", "j")
    assert job["spec"]["template"]["spec"] == template["spec"]["template"]["spec"]
    assert job["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert job["metadata"]["annotations"]["note"] == "x"
    # the Job's own fields; selector, the template's labels and backoffLimit are the Job's defaults
    defaulted = {"selector", "manualSelector", "template", "backoffLimit", "suspend"}
    assert {k: v for k, v in job["spec"].items() if k not in defaulted} == {
        k: v for k, v in template["spec"].items() if k not in defaulted
    }
    # spelt out, in case both sides lost the same thing
    spec = job["spec"]["template"]["spec"]
    main = spec["containers"][0]
    assert main["env"][1] == {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a", "optional": True}}}
    assert main["env"][3]["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
    assert main["env"][4]["valueFrom"]["resourceFieldRef"]["divisor"] == "1Mi"
    assert main["envFrom"] == [{"prefix": "CM_", "configMapRef": {"name": "cfg", "optional": True}}, {"secretRef": {"name": "s"}}]
    assert main["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Gi"}, "limits": {"cpu": "1", "memory": "128Mi"}}
    assert {m["name"] for m in main["volumeMounts"]} == {"cm", "sec", "scratch", "host", "proj", "down", "claim", "plain", "nfs", "csi", "eph"}
    assert main["volumeMounts"][3]["mountPropagation"] == "HostToContainer"
    assert main["volumeDevices"] == [{"name": "dev", "devicePath": "/dev/xvda"}]
    assert main["readinessProbe"]["httpGet"]["httpHeaders"] == [{"name": "X-Probe", "value": "1"}]
    assert main["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert main["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert main["securityContext"]["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/audit.json"}
    assert main["stdin"] is main["tty"] is True
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert spec["initContainers"][0]["startupProbe"]["grpc"] == {"port": 9000, "service": "health"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes["plain"]["emptyDir"] == {}
    assert volumes["proj"]["projected"]["sources"][0] == {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 3600, "path": "token"}}
    assert volumes["eph"]["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaceSelector"] == {"matchLabels": {"team": "a"}}
    assert spec["tolerations"][1]["tolerationSeconds"] == 30
    assert spec["topologySpreadConstraints"][0]["minDomains"] == 2
    assert spec["hostAliases"] == [{"ip": "10.0.0.1", "hostnames": ["a.local", "b.local"]}]
    assert spec["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
    assert spec["enableServiceLinks"] is False and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [42, 43]
    assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0-1", "succeededCount": 1}]}
    assert job["spec"]["ttlSecondsAfterFinished"] == 0


def test_debug_copy_to_keeps_the_containers_env_and_probes(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("-n", ns, "apply", "-f", manifest(tmp_path, POD))
    kubectl.run("-n", ns, "debug", "p", "--copy-to=p2", "--container=dbg", "--image=busybox", "--", "sleep", "300")
    original, copy = get(kubectl, ns, "pod", "p")["spec"], get(kubectl, ns, "pod", "p2")["spec"]
    assert [c["name"] for c in copy["containers"]] == ["app", "dbg"]
    assert copy["containers"][0] == original["containers"][0]
    assert copy["containers"][0]["env"][0]["valueFrom"] == {"configMapKeyRef": {"name": "cfg", "key": "a", "optional": True}}
    assert copy["containers"][0]["readinessProbe"]["httpGet"]["httpHeaders"] == [{"name": "X-A", "value": "b"}]
    assert copy["volumes"] == original["volumes"]
    assert copy["containers"][1]["command"] == ["sleep", "300"]


def test_debug_node_keeps_host_namespaces_volume_and_toleration(kubectl: Kubectl, ns: str) -> None:
    kubectl.run("-n", ns, "debug", "node/emulator", "--image=busybox", "--", "true")
    pods = get(kubectl, ns, "pods")["items"]
    assert len(pods) == 1
    spec = pods[0]["spec"]
    assert (spec.get("hostNetwork"), spec.get("hostPID"), spec.get("hostIPC")) == (True, True, True)
    assert spec["volumes"] == [{"name": "host-root", "hostPath": {"path": "/"}}]
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "host-root", "mountPath": "/host"}]
    assert spec["nodeName"] == "emulator"


def test_an_unknown_protobuf_field_is_named_and_dropped(emu: Emulator, ns: str) -> None:
    # A field number 1.32 does not have (a newer kubectl's new field), in a Job's pod template: named in a
    # warning and dropped, also under Strict (a real API server drops it silently and refuses nothing).
    container = msg(2, text(1, "app"), text(2, "busybox"), vint(99, 1))
    template = msg(6, msg(1, msg(11, text(1, "app"), text(2, "u"))), msg(2, container, text(3, "Never")))
    body = envelope("Job", object_meta("u") + msg(2, template), api_version="batch/v1")
    url = f"/apis/batch/v1/namespaces/{ns}/jobs"
    with emu.client() as api:
        for n, validation in enumerate(("Strict", "Warn")):
            named = body.replace(b"\x0a\x01u", b"\x0a\x01" + b"st"[n : n + 1], 1)  # another name each
            answer = api.post(f"{url}?fieldValidation={validation}", content=named, headers={"Content-Type": PROTOBUF})
            assert answer.status_code == 201, answer.text
            assert 'unknown field \\"spec.template.spec.containers[0].protobuf field 99\\"' in answer.headers["warning"]
            assert "protobuf field 99" not in answer.text
        # a JSON body's unknown field is still refused under Strict
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "b", "imagee": "c"}]}}}}
        refused = api.post(f"{url}?fieldValidation=Strict", json=job)
        assert refused.status_code == 400 and 'unknown field "spec.template.spec.containers[0].imagee"' in refused.json()["message"]
        ignore = api.post(f"{url}?fieldValidation=Ignore", content=body, headers={"Content-Type": PROTOBUF})
        assert ignore.status_code == 201, ignore.text
        assert "warning" not in ignore.headers and "protobuf field 99" not in ignore.text
