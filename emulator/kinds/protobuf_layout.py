"""Protobuf message layouts (field numbers from k8s.io/api and k8s.io/apimachinery `generated.proto`,
release-1.32): the shared parts every kind's layout uses. A kind module declares its own messages from
these; api/protobuf.py decodes bodies with them.

A layout declares every field of its 1.32 message: an API server never drops what a client sent, and
kubectl sends protobuf for some writes (`kubectl create job --from=cronjob/…`, `kubectl debug
--copy-to`, `kubectl debug node/…`), whole pod templates included. A field number a layout does not
know (a later release's field) is not dropped silently: api/protobuf.py reports it as an unknown field,
which the write path names in a Warning header and drops (not refused even under Strict, as a real API
server, which drops it silently, does not refuse it either).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The key a field number no layout knows becomes in its object (api/protobuf.py): `protobuf field 99`.
# The write path names it in a warning and drops it, whatever `fieldValidation` says but Ignore
# (registry.py): a real API server drops unknown protobuf fields silently, and a newer kubectl's new
# field must not turn into a refused request.
UNKNOWN_FIELD_PREFIX = "protobuf field "


@dataclass(frozen=True)
class Field:
    """One field of a message layout.

    ``type`` is one of string, bytes, int, bool, message, map (map<string, string>, or with ``value``
    "quantity" map<string, Quantity>), int_or_string, time, quantity (resource.Quantity: its string),
    fields_v1 (metav1.FieldsV1: raw JSON).
    ``optional`` keeps zero values: Go pointer fields (present means set) and the fields Go's JSON
    writes even when zero (no ``omitempty``: a container's `name`, a status's `ready: false`, an exit
    code 0). Other fields are always written by gogo-proto and their zero values dropped (JSON
    ``omitempty``), an empty struct included.
    ``inline`` marks an embedded Go struct (`json:",inline"`): its fields belong to the enclosing
    object (a Volume's VolumeSource, a Probe's ProbeHandler).
    """

    name: str
    type: str
    message: Mapping[int, Field] | None = None
    repeated: bool = False
    optional: bool = False
    inline: bool = False
    value: str = "string"


Message = Mapping[int, Field]

TIME: Message = {1: Field("seconds", "int"), 2: Field("nanos", "int")}
INT_OR_STRING: Message = {1: Field("type", "int"), 2: Field("intVal", "int"), 3: Field("strVal", "string")}
QUANTITY: Message = {1: Field("string", "string")}

# -- meta/v1 ----------------------------------------------------------------------------------------

OWNER_REFERENCE: Message = {
    5: Field("apiVersion", "string"),
    1: Field("kind", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    6: Field("controller", "bool", optional=True),
    7: Field("blockOwnerDeletion", "bool", optional=True),
}

MANAGED_FIELDS_ENTRY: Message = {
    1: Field("manager", "string"),
    2: Field("operation", "string"),
    3: Field("apiVersion", "string"),
    4: Field("time", "time", optional=True),
    6: Field("fieldsType", "string"),
    7: Field("fieldsV1", "fields_v1", optional=True),
    8: Field("subresource", "string"),
}

OBJECT_META: Message = {
    1: Field("name", "string"),
    2: Field("generateName", "string"),
    3: Field("namespace", "string"),
    4: Field("selfLink", "string"),
    5: Field("uid", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("generation", "int"),
    8: Field("creationTimestamp", "time"),
    9: Field("deletionTimestamp", "time", optional=True),
    10: Field("deletionGracePeriodSeconds", "int", optional=True),
    11: Field("labels", "map"),
    12: Field("annotations", "map"),
    13: Field("ownerReferences", "message", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", "string", repeated=True),
    17: Field("managedFields", "message", MANAGED_FIELDS_ENTRY, repeated=True),
}

LABEL_SELECTOR_REQUIREMENT: Message = {
    1: Field("key", "string"),
    2: Field("operator", "string"),
    3: Field("values", "string", repeated=True),
}

LABEL_SELECTOR: Message = {
    1: Field("matchLabels", "map"),
    2: Field("matchExpressions", "message", LABEL_SELECTOR_REQUIREMENT, repeated=True),
}

CONDITION: Message = {
    1: Field("type", "string", optional=True),
    2: Field("status", "string", optional=True),
    3: Field("observedGeneration", "int"),
    4: Field("lastTransitionTime", "time"),
    5: Field("reason", "string", optional=True),
    6: Field("message", "string", optional=True),
}

# -- core/v1 ----------------------------------------------------------------------------------------

OBJECT_REFERENCE: Message = {
    1: Field("kind", "string"),
    2: Field("namespace", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    5: Field("apiVersion", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("fieldPath", "string"),
}

# The PodSpec tree (a Pod, every pod template), PodStatus, and the PersistentVolumeClaim a
# StatefulSet's volumeClaimTemplates hold. Declared before use, leaves first.

HOST_PATH_VOLUME_SOURCE: Message = {  # HostPathVolumeSource
    1: Field("path", "string", optional=True),
    2: Field("type", "string", optional=True),
}

EMPTY_DIR_VOLUME_SOURCE: Message = {  # EmptyDirVolumeSource
    1: Field("medium", "string"),
    2: Field("sizeLimit", "quantity", optional=True),
}

GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = {  # GCEPersistentDiskVolumeSource
    1: Field("pdName", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("partition", "int"),
    4: Field("readOnly", "bool"),
}

AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = {  # AWSElasticBlockStoreVolumeSource
    1: Field("volumeID", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("partition", "int"),
    4: Field("readOnly", "bool"),
}

GIT_REPO_VOLUME_SOURCE: Message = {  # GitRepoVolumeSource
    1: Field("repository", "string", optional=True),
    2: Field("revision", "string"),
    3: Field("directory", "string"),
}

KEY_TO_PATH: Message = {  # KeyToPath
    1: Field("key", "string", optional=True),
    2: Field("path", "string", optional=True),
    3: Field("mode", "int", optional=True),
}

SECRET_VOLUME_SOURCE: Message = {  # SecretVolumeSource
    1: Field("secretName", "string"),
    2: Field("items", "message", KEY_TO_PATH, repeated=True),
    3: Field("defaultMode", "int", optional=True),
    4: Field("optional", "bool", optional=True),
}

NFS_VOLUME_SOURCE: Message = {  # NFSVolumeSource
    1: Field("server", "string", optional=True),
    2: Field("path", "string", optional=True),
    3: Field("readOnly", "bool"),
}

LOCAL_OBJECT_REFERENCE: Message = {  # LocalObjectReference
    1: Field("name", "string"),
}

ISCSI_VOLUME_SOURCE: Message = {  # ISCSIVolumeSource
    1: Field("targetPortal", "string", optional=True),
    2: Field("iqn", "string", optional=True),
    3: Field("lun", "int", optional=True),
    4: Field("iscsiInterface", "string"),
    5: Field("fsType", "string"),
    6: Field("readOnly", "bool"),
    7: Field("portals", "string", repeated=True),
    8: Field("chapAuthDiscovery", "bool"),
    11: Field("chapAuthSession", "bool"),
    10: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
    12: Field("initiatorName", "string", optional=True),
}

GLUSTERFS_VOLUME_SOURCE: Message = {  # GlusterfsVolumeSource
    1: Field("endpoints", "string", optional=True),
    2: Field("path", "string", optional=True),
    3: Field("readOnly", "bool"),
}

PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = {  # PersistentVolumeClaimVolumeSource
    1: Field("claimName", "string", optional=True),
    2: Field("readOnly", "bool"),
}

RBD_VOLUME_SOURCE: Message = {  # RBDVolumeSource
    1: Field("monitors", "string", repeated=True),
    2: Field("image", "string", optional=True),
    3: Field("fsType", "string"),
    4: Field("pool", "string"),
    5: Field("user", "string"),
    6: Field("keyring", "string"),
    7: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
    8: Field("readOnly", "bool"),
}

FLEX_VOLUME_SOURCE: Message = {  # FlexVolumeSource
    1: Field("driver", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
    4: Field("readOnly", "bool"),
    5: Field("options", "map"),
}

CINDER_VOLUME_SOURCE: Message = {  # CinderVolumeSource
    1: Field("volumeID", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("readOnly", "bool"),
    4: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
}

CEPH_FS_VOLUME_SOURCE: Message = {  # CephFSVolumeSource
    1: Field("monitors", "string", repeated=True),
    2: Field("path", "string"),
    3: Field("user", "string"),
    4: Field("secretFile", "string"),
    5: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
    6: Field("readOnly", "bool"),
}

FLOCKER_VOLUME_SOURCE: Message = {  # FlockerVolumeSource
    1: Field("datasetName", "string"),
    2: Field("datasetUUID", "string"),
}

OBJECT_FIELD_SELECTOR: Message = {  # ObjectFieldSelector
    1: Field("apiVersion", "string"),
    2: Field("fieldPath", "string", optional=True),
}

RESOURCE_FIELD_SELECTOR: Message = {  # ResourceFieldSelector
    1: Field("containerName", "string"),
    2: Field("resource", "string", optional=True),
    3: Field("divisor", "quantity"),
}

DOWNWARD_API_VOLUME_FILE: Message = {  # DownwardAPIVolumeFile
    1: Field("path", "string", optional=True),
    2: Field("fieldRef", "message", OBJECT_FIELD_SELECTOR, optional=True),
    3: Field("resourceFieldRef", "message", RESOURCE_FIELD_SELECTOR, optional=True),
    4: Field("mode", "int", optional=True),
}

DOWNWARD_API_VOLUME_SOURCE: Message = {  # DownwardAPIVolumeSource
    1: Field("items", "message", DOWNWARD_API_VOLUME_FILE, repeated=True),
    2: Field("defaultMode", "int", optional=True),
}

FC_VOLUME_SOURCE: Message = {  # FCVolumeSource
    1: Field("targetWWNs", "string", repeated=True),
    2: Field("lun", "int", optional=True),
    3: Field("fsType", "string"),
    4: Field("readOnly", "bool"),
    5: Field("wwids", "string", repeated=True),
}

AZURE_FILE_VOLUME_SOURCE: Message = {  # AzureFileVolumeSource
    1: Field("secretName", "string", optional=True),
    2: Field("shareName", "string", optional=True),
    3: Field("readOnly", "bool"),
}

CONFIG_MAP_VOLUME_SOURCE: Message = {  # ConfigMapVolumeSource
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("items", "message", KEY_TO_PATH, repeated=True),
    3: Field("defaultMode", "int", optional=True),
    4: Field("optional", "bool", optional=True),
}

VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = {  # VsphereVirtualDiskVolumeSource
    1: Field("volumePath", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("storagePolicyName", "string"),
    4: Field("storagePolicyID", "string"),
}

QUOBYTE_VOLUME_SOURCE: Message = {  # QuobyteVolumeSource
    1: Field("registry", "string", optional=True),
    2: Field("volume", "string", optional=True),
    3: Field("readOnly", "bool"),
    4: Field("user", "string"),
    5: Field("group", "string"),
    6: Field("tenant", "string"),
}

AZURE_DISK_VOLUME_SOURCE: Message = {  # AzureDiskVolumeSource
    1: Field("diskName", "string", optional=True),
    2: Field("diskURI", "string", optional=True),
    3: Field("cachingMode", "string", optional=True),
    4: Field("fsType", "string", optional=True),
    5: Field("readOnly", "bool", optional=True),
    6: Field("kind", "string", optional=True),
}

PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message = {  # PhotonPersistentDiskVolumeSource
    1: Field("pdID", "string", optional=True),
    2: Field("fsType", "string"),
}

SECRET_PROJECTION: Message = {  # SecretProjection
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("items", "message", KEY_TO_PATH, repeated=True),
    4: Field("optional", "bool", optional=True),
}

DOWNWARD_API_PROJECTION: Message = {  # DownwardAPIProjection
    1: Field("items", "message", DOWNWARD_API_VOLUME_FILE, repeated=True),
}

CONFIG_MAP_PROJECTION: Message = {  # ConfigMapProjection
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("items", "message", KEY_TO_PATH, repeated=True),
    4: Field("optional", "bool", optional=True),
}

SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = {  # ServiceAccountTokenProjection
    1: Field("audience", "string"),
    2: Field("expirationSeconds", "int", optional=True),
    3: Field("path", "string", optional=True),
}

CLUSTER_TRUST_BUNDLE_PROJECTION: Message = {  # ClusterTrustBundleProjection
    1: Field("name", "string", optional=True),
    2: Field("signerName", "string", optional=True),
    3: Field("labelSelector", "message", LABEL_SELECTOR, optional=True),
    5: Field("optional", "bool", optional=True),
    4: Field("path", "string", optional=True),
}

VOLUME_PROJECTION: Message = {  # VolumeProjection
    1: Field("secret", "message", SECRET_PROJECTION, optional=True),
    2: Field("downwardAPI", "message", DOWNWARD_API_PROJECTION, optional=True),
    3: Field("configMap", "message", CONFIG_MAP_PROJECTION, optional=True),
    4: Field("serviceAccountToken", "message", SERVICE_ACCOUNT_TOKEN_PROJECTION, optional=True),
    5: Field("clusterTrustBundle", "message", CLUSTER_TRUST_BUNDLE_PROJECTION, optional=True),
}

PROJECTED_VOLUME_SOURCE: Message = {  # ProjectedVolumeSource
    1: Field("sources", "message", VOLUME_PROJECTION, repeated=True),
    2: Field("defaultMode", "int", optional=True),
}

PORTWORX_VOLUME_SOURCE: Message = {  # PortworxVolumeSource
    1: Field("volumeID", "string", optional=True),
    2: Field("fsType", "string"),
    3: Field("readOnly", "bool"),
}

SCALE_IO_VOLUME_SOURCE: Message = {  # ScaleIOVolumeSource
    1: Field("gateway", "string", optional=True),
    2: Field("system", "string", optional=True),
    3: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
    4: Field("sslEnabled", "bool"),
    5: Field("protectionDomain", "string"),
    6: Field("storagePool", "string"),
    7: Field("storageMode", "string"),
    8: Field("volumeName", "string"),
    9: Field("fsType", "string"),
    10: Field("readOnly", "bool"),
}

STORAGE_OS_VOLUME_SOURCE: Message = {  # StorageOSVolumeSource
    1: Field("volumeName", "string"),
    2: Field("volumeNamespace", "string"),
    3: Field("fsType", "string"),
    4: Field("readOnly", "bool"),
    5: Field("secretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
}

CSI_VOLUME_SOURCE: Message = {  # CSIVolumeSource
    1: Field("driver", "string", optional=True),
    2: Field("readOnly", "bool", optional=True),
    3: Field("fsType", "string", optional=True),
    4: Field("volumeAttributes", "map"),
    5: Field("nodePublishSecretRef", "message", LOCAL_OBJECT_REFERENCE, optional=True),
}

VOLUME_RESOURCE_REQUIREMENTS: Message = {  # VolumeResourceRequirements
    1: Field("limits", "map", value="quantity"),
    2: Field("requests", "map", value="quantity"),
}

TYPED_LOCAL_OBJECT_REFERENCE: Message = {  # TypedLocalObjectReference
    1: Field("apiGroup", "string", optional=True),
    2: Field("kind", "string", optional=True),
    3: Field("name", "string", optional=True),
}

TYPED_OBJECT_REFERENCE: Message = {  # TypedObjectReference
    1: Field("apiGroup", "string", optional=True),
    2: Field("kind", "string", optional=True),
    3: Field("name", "string", optional=True),
    4: Field("namespace", "string", optional=True),
}

PERSISTENT_VOLUME_CLAIM_SPEC: Message = {  # PersistentVolumeClaimSpec
    1: Field("accessModes", "string", repeated=True),
    4: Field("selector", "message", LABEL_SELECTOR, optional=True),
    2: Field("resources", "message", VOLUME_RESOURCE_REQUIREMENTS),
    3: Field("volumeName", "string"),
    5: Field("storageClassName", "string", optional=True),
    6: Field("volumeMode", "string", optional=True),
    7: Field("dataSource", "message", TYPED_LOCAL_OBJECT_REFERENCE, optional=True),
    8: Field("dataSourceRef", "message", TYPED_OBJECT_REFERENCE, optional=True),
    9: Field("volumeAttributesClassName", "string", optional=True),
}

PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = {  # PersistentVolumeClaimTemplate
    1: Field("metadata", "message", OBJECT_META),
    2: Field("spec", "message", PERSISTENT_VOLUME_CLAIM_SPEC),
}

EPHEMERAL_VOLUME_SOURCE: Message = {  # EphemeralVolumeSource
    1: Field("volumeClaimTemplate", "message", PERSISTENT_VOLUME_CLAIM_TEMPLATE, optional=True),
}

IMAGE_VOLUME_SOURCE: Message = {  # ImageVolumeSource
    1: Field("reference", "string"),
    2: Field("pullPolicy", "string"),
}

VOLUME_SOURCE: Message = {  # VolumeSource
    1: Field("hostPath", "message", HOST_PATH_VOLUME_SOURCE, optional=True),
    2: Field("emptyDir", "message", EMPTY_DIR_VOLUME_SOURCE, optional=True),
    3: Field("gcePersistentDisk", "message", GCE_PERSISTENT_DISK_VOLUME_SOURCE, optional=True),
    4: Field("awsElasticBlockStore", "message", AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE, optional=True),
    5: Field("gitRepo", "message", GIT_REPO_VOLUME_SOURCE, optional=True),
    6: Field("secret", "message", SECRET_VOLUME_SOURCE, optional=True),
    7: Field("nfs", "message", NFS_VOLUME_SOURCE, optional=True),
    8: Field("iscsi", "message", ISCSI_VOLUME_SOURCE, optional=True),
    9: Field("glusterfs", "message", GLUSTERFS_VOLUME_SOURCE, optional=True),
    10: Field("persistentVolumeClaim", "message", PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE, optional=True),
    11: Field("rbd", "message", RBD_VOLUME_SOURCE, optional=True),
    12: Field("flexVolume", "message", FLEX_VOLUME_SOURCE, optional=True),
    13: Field("cinder", "message", CINDER_VOLUME_SOURCE, optional=True),
    14: Field("cephfs", "message", CEPH_FS_VOLUME_SOURCE, optional=True),
    15: Field("flocker", "message", FLOCKER_VOLUME_SOURCE, optional=True),
    16: Field("downwardAPI", "message", DOWNWARD_API_VOLUME_SOURCE, optional=True),
    17: Field("fc", "message", FC_VOLUME_SOURCE, optional=True),
    18: Field("azureFile", "message", AZURE_FILE_VOLUME_SOURCE, optional=True),
    19: Field("configMap", "message", CONFIG_MAP_VOLUME_SOURCE, optional=True),
    20: Field("vsphereVolume", "message", VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE, optional=True),
    21: Field("quobyte", "message", QUOBYTE_VOLUME_SOURCE, optional=True),
    22: Field("azureDisk", "message", AZURE_DISK_VOLUME_SOURCE, optional=True),
    23: Field("photonPersistentDisk", "message", PHOTON_PERSISTENT_DISK_VOLUME_SOURCE, optional=True),
    26: Field("projected", "message", PROJECTED_VOLUME_SOURCE, optional=True),
    24: Field("portworxVolume", "message", PORTWORX_VOLUME_SOURCE, optional=True),
    25: Field("scaleIO", "message", SCALE_IO_VOLUME_SOURCE, optional=True),
    27: Field("storageos", "message", STORAGE_OS_VOLUME_SOURCE, optional=True),
    28: Field("csi", "message", CSI_VOLUME_SOURCE, optional=True),
    29: Field("ephemeral", "message", EPHEMERAL_VOLUME_SOURCE, optional=True),
    30: Field("image", "message", IMAGE_VOLUME_SOURCE, optional=True),
}

VOLUME: Message = {  # Volume
    1: Field("name", "string", optional=True),
    2: Field("volumeSource", "message", VOLUME_SOURCE, inline=True),
}

CONTAINER_PORT: Message = {  # ContainerPort
    1: Field("name", "string"),
    2: Field("hostPort", "int"),
    3: Field("containerPort", "int", optional=True),
    4: Field("protocol", "string"),
    5: Field("hostIP", "string"),
}

CONFIG_MAP_ENV_SOURCE: Message = {  # ConfigMapEnvSource
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("optional", "bool", optional=True),
}

SECRET_ENV_SOURCE: Message = {  # SecretEnvSource
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("optional", "bool", optional=True),
}

ENV_FROM_SOURCE: Message = {  # EnvFromSource
    1: Field("prefix", "string"),
    2: Field("configMapRef", "message", CONFIG_MAP_ENV_SOURCE, optional=True),
    3: Field("secretRef", "message", SECRET_ENV_SOURCE, optional=True),
}

CONFIG_MAP_KEY_SELECTOR: Message = {  # ConfigMapKeySelector
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("key", "string", optional=True),
    3: Field("optional", "bool", optional=True),
}

SECRET_KEY_SELECTOR: Message = {  # SecretKeySelector
    1: Field("localObjectReference", "message", LOCAL_OBJECT_REFERENCE, inline=True),
    2: Field("key", "string", optional=True),
    3: Field("optional", "bool", optional=True),
}

ENV_VAR_SOURCE: Message = {  # EnvVarSource
    1: Field("fieldRef", "message", OBJECT_FIELD_SELECTOR, optional=True),
    2: Field("resourceFieldRef", "message", RESOURCE_FIELD_SELECTOR, optional=True),
    3: Field("configMapKeyRef", "message", CONFIG_MAP_KEY_SELECTOR, optional=True),
    4: Field("secretKeyRef", "message", SECRET_KEY_SELECTOR, optional=True),
}

ENV_VAR: Message = {  # EnvVar
    1: Field("name", "string", optional=True),
    2: Field("value", "string"),
    3: Field("valueFrom", "message", ENV_VAR_SOURCE, optional=True),
}

RESOURCE_CLAIM: Message = {  # ResourceClaim
    1: Field("name", "string", optional=True),
    2: Field("request", "string"),
}

RESOURCE_REQUIREMENTS: Message = {  # ResourceRequirements
    1: Field("limits", "map", value="quantity"),
    2: Field("requests", "map", value="quantity"),
    3: Field("claims", "message", RESOURCE_CLAIM, repeated=True),
}

CONTAINER_RESIZE_POLICY: Message = {  # ContainerResizePolicy
    1: Field("resourceName", "string", optional=True),
    2: Field("restartPolicy", "string", optional=True),
}

VOLUME_MOUNT: Message = {  # VolumeMount
    1: Field("name", "string", optional=True),
    2: Field("readOnly", "bool"),
    7: Field("recursiveReadOnly", "string", optional=True),
    3: Field("mountPath", "string", optional=True),
    4: Field("subPath", "string"),
    5: Field("mountPropagation", "string", optional=True),
    6: Field("subPathExpr", "string"),
}

VOLUME_DEVICE: Message = {  # VolumeDevice
    1: Field("name", "string", optional=True),
    2: Field("devicePath", "string", optional=True),
}

EXEC_ACTION: Message = {  # ExecAction
    1: Field("command", "string", repeated=True),
}

HTTP_HEADER: Message = {  # HTTPHeader
    1: Field("name", "string", optional=True),
    2: Field("value", "string", optional=True),
}

HTTP_GET_ACTION: Message = {  # HTTPGetAction
    1: Field("path", "string"),
    2: Field("port", "int_or_string", optional=True),
    3: Field("host", "string"),
    4: Field("scheme", "string"),
    5: Field("httpHeaders", "message", HTTP_HEADER, repeated=True),
}

TCP_SOCKET_ACTION: Message = {  # TCPSocketAction
    1: Field("port", "int_or_string", optional=True),
    2: Field("host", "string"),
}

GRPC_ACTION: Message = {  # GRPCAction
    1: Field("port", "int", optional=True),
    2: Field("service", "string", optional=True),
}

PROBE_HANDLER: Message = {  # ProbeHandler
    1: Field("exec", "message", EXEC_ACTION, optional=True),
    2: Field("httpGet", "message", HTTP_GET_ACTION, optional=True),
    3: Field("tcpSocket", "message", TCP_SOCKET_ACTION, optional=True),
    4: Field("grpc", "message", GRPC_ACTION, optional=True),
}

PROBE: Message = {  # Probe
    1: Field("handler", "message", PROBE_HANDLER, inline=True),
    2: Field("initialDelaySeconds", "int"),
    3: Field("timeoutSeconds", "int"),
    4: Field("periodSeconds", "int"),
    5: Field("successThreshold", "int"),
    6: Field("failureThreshold", "int"),
    7: Field("terminationGracePeriodSeconds", "int", optional=True),
}

SLEEP_ACTION: Message = {  # SleepAction
    1: Field("seconds", "int", optional=True),
}

LIFECYCLE_HANDLER: Message = {  # LifecycleHandler
    1: Field("exec", "message", EXEC_ACTION, optional=True),
    2: Field("httpGet", "message", HTTP_GET_ACTION, optional=True),
    3: Field("tcpSocket", "message", TCP_SOCKET_ACTION, optional=True),
    4: Field("sleep", "message", SLEEP_ACTION, optional=True),
}

LIFECYCLE: Message = {  # Lifecycle
    1: Field("postStart", "message", LIFECYCLE_HANDLER, optional=True),
    2: Field("preStop", "message", LIFECYCLE_HANDLER, optional=True),
}

CAPABILITIES: Message = {  # Capabilities
    1: Field("add", "string", repeated=True),
    2: Field("drop", "string", repeated=True),
}

SE_LINUX_OPTIONS: Message = {  # SELinuxOptions
    1: Field("user", "string"),
    2: Field("role", "string"),
    3: Field("type", "string"),
    4: Field("level", "string"),
}

WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = {  # WindowsSecurityContextOptions
    1: Field("gmsaCredentialSpecName", "string", optional=True),
    2: Field("gmsaCredentialSpec", "string", optional=True),
    3: Field("runAsUserName", "string", optional=True),
    4: Field("hostProcess", "bool", optional=True),
}

SECCOMP_PROFILE: Message = {  # SeccompProfile
    1: Field("type", "string", optional=True),
    2: Field("localhostProfile", "string", optional=True),
}

APP_ARMOR_PROFILE: Message = {  # AppArmorProfile
    1: Field("type", "string", optional=True),
    2: Field("localhostProfile", "string", optional=True),
}

SECURITY_CONTEXT: Message = {  # SecurityContext
    1: Field("capabilities", "message", CAPABILITIES, optional=True),
    2: Field("privileged", "bool", optional=True),
    3: Field("seLinuxOptions", "message", SE_LINUX_OPTIONS, optional=True),
    10: Field("windowsOptions", "message", WINDOWS_SECURITY_CONTEXT_OPTIONS, optional=True),
    4: Field("runAsUser", "int", optional=True),
    8: Field("runAsGroup", "int", optional=True),
    5: Field("runAsNonRoot", "bool", optional=True),
    6: Field("readOnlyRootFilesystem", "bool", optional=True),
    7: Field("allowPrivilegeEscalation", "bool", optional=True),
    9: Field("procMount", "string", optional=True),
    11: Field("seccompProfile", "message", SECCOMP_PROFILE, optional=True),
    12: Field("appArmorProfile", "message", APP_ARMOR_PROFILE, optional=True),
}

CONTAINER: Message = {  # Container
    1: Field("name", "string", optional=True),
    2: Field("image", "string"),
    3: Field("command", "string", repeated=True),
    4: Field("args", "string", repeated=True),
    5: Field("workingDir", "string"),
    6: Field("ports", "message", CONTAINER_PORT, repeated=True),
    19: Field("envFrom", "message", ENV_FROM_SOURCE, repeated=True),
    7: Field("env", "message", ENV_VAR, repeated=True),
    8: Field("resources", "message", RESOURCE_REQUIREMENTS),
    23: Field("resizePolicy", "message", CONTAINER_RESIZE_POLICY, repeated=True),
    24: Field("restartPolicy", "string", optional=True),
    9: Field("volumeMounts", "message", VOLUME_MOUNT, repeated=True),
    21: Field("volumeDevices", "message", VOLUME_DEVICE, repeated=True),
    10: Field("livenessProbe", "message", PROBE, optional=True),
    11: Field("readinessProbe", "message", PROBE, optional=True),
    22: Field("startupProbe", "message", PROBE, optional=True),
    12: Field("lifecycle", "message", LIFECYCLE, optional=True),
    13: Field("terminationMessagePath", "string"),
    20: Field("terminationMessagePolicy", "string"),
    14: Field("imagePullPolicy", "string"),
    15: Field("securityContext", "message", SECURITY_CONTEXT, optional=True),
    16: Field("stdin", "bool"),
    17: Field("stdinOnce", "bool"),
    18: Field("tty", "bool"),
}

EPHEMERAL_CONTAINER: Message = {  # EphemeralContainer
    # EphemeralContainerCommon: Container's fields, numbered alike
    1: Field("ephemeralContainerCommon", "message", CONTAINER, inline=True),
    2: Field("targetContainerName", "string"),
}

SYSCTL: Message = {  # Sysctl
    1: Field("name", "string", optional=True),
    2: Field("value", "string", optional=True),
}

POD_SECURITY_CONTEXT: Message = {  # PodSecurityContext
    1: Field("seLinuxOptions", "message", SE_LINUX_OPTIONS, optional=True),
    8: Field("windowsOptions", "message", WINDOWS_SECURITY_CONTEXT_OPTIONS, optional=True),
    2: Field("runAsUser", "int", optional=True),
    6: Field("runAsGroup", "int", optional=True),
    3: Field("runAsNonRoot", "bool", optional=True),
    4: Field("supplementalGroups", "int", repeated=True),
    12: Field("supplementalGroupsPolicy", "string", optional=True),
    5: Field("fsGroup", "int", optional=True),
    7: Field("sysctls", "message", SYSCTL, repeated=True),
    9: Field("fsGroupChangePolicy", "string", optional=True),
    10: Field("seccompProfile", "message", SECCOMP_PROFILE, optional=True),
    11: Field("appArmorProfile", "message", APP_ARMOR_PROFILE, optional=True),
    13: Field("seLinuxChangePolicy", "string", optional=True),
}

NODE_SELECTOR_REQUIREMENT: Message = {  # NodeSelectorRequirement
    1: Field("key", "string", optional=True),
    2: Field("operator", "string", optional=True),
    3: Field("values", "string", repeated=True),
}

NODE_SELECTOR_TERM: Message = {  # NodeSelectorTerm
    1: Field("matchExpressions", "message", NODE_SELECTOR_REQUIREMENT, repeated=True),
    2: Field("matchFields", "message", NODE_SELECTOR_REQUIREMENT, repeated=True),
}

NODE_SELECTOR: Message = {  # NodeSelector
    1: Field("nodeSelectorTerms", "message", NODE_SELECTOR_TERM, repeated=True),
}

PREFERRED_SCHEDULING_TERM: Message = {  # PreferredSchedulingTerm
    1: Field("weight", "int", optional=True),
    2: Field("preference", "message", NODE_SELECTOR_TERM),
}

NODE_AFFINITY: Message = {  # NodeAffinity
    1: Field("requiredDuringSchedulingIgnoredDuringExecution", "message", NODE_SELECTOR, optional=True),
    2: Field("preferredDuringSchedulingIgnoredDuringExecution", "message", PREFERRED_SCHEDULING_TERM, repeated=True),
}

POD_AFFINITY_TERM: Message = {  # PodAffinityTerm
    1: Field("labelSelector", "message", LABEL_SELECTOR, optional=True),
    2: Field("namespaces", "string", repeated=True),
    3: Field("topologyKey", "string", optional=True),
    4: Field("namespaceSelector", "message", LABEL_SELECTOR, optional=True),
    5: Field("matchLabelKeys", "string", repeated=True),
    6: Field("mismatchLabelKeys", "string", repeated=True),
}

WEIGHTED_POD_AFFINITY_TERM: Message = {  # WeightedPodAffinityTerm
    1: Field("weight", "int", optional=True),
    2: Field("podAffinityTerm", "message", POD_AFFINITY_TERM),
}

POD_AFFINITY: Message = {  # PodAffinity
    1: Field("requiredDuringSchedulingIgnoredDuringExecution", "message", POD_AFFINITY_TERM, repeated=True),
    2: Field("preferredDuringSchedulingIgnoredDuringExecution", "message", WEIGHTED_POD_AFFINITY_TERM, repeated=True),
}

POD_ANTI_AFFINITY: Message = {  # PodAntiAffinity
    1: Field("requiredDuringSchedulingIgnoredDuringExecution", "message", POD_AFFINITY_TERM, repeated=True),
    2: Field("preferredDuringSchedulingIgnoredDuringExecution", "message", WEIGHTED_POD_AFFINITY_TERM, repeated=True),
}

AFFINITY: Message = {  # Affinity
    1: Field("nodeAffinity", "message", NODE_AFFINITY, optional=True),
    2: Field("podAffinity", "message", POD_AFFINITY, optional=True),
    3: Field("podAntiAffinity", "message", POD_ANTI_AFFINITY, optional=True),
}

TOLERATION: Message = {  # Toleration
    1: Field("key", "string"),
    2: Field("operator", "string"),
    3: Field("value", "string"),
    4: Field("effect", "string"),
    5: Field("tolerationSeconds", "int", optional=True),
}

HOST_ALIAS: Message = {  # HostAlias
    1: Field("ip", "string", optional=True),
    2: Field("hostnames", "string", repeated=True),
}

POD_DNS_CONFIG_OPTION: Message = {  # PodDNSConfigOption
    1: Field("name", "string"),
    2: Field("value", "string", optional=True),
}

POD_DNS_CONFIG: Message = {  # PodDNSConfig
    1: Field("nameservers", "string", repeated=True),
    2: Field("searches", "string", repeated=True),
    3: Field("options", "message", POD_DNS_CONFIG_OPTION, repeated=True),
}

POD_READINESS_GATE: Message = {  # PodReadinessGate
    1: Field("conditionType", "string", optional=True),
}

TOPOLOGY_SPREAD_CONSTRAINT: Message = {  # TopologySpreadConstraint
    1: Field("maxSkew", "int", optional=True),
    2: Field("topologyKey", "string", optional=True),
    3: Field("whenUnsatisfiable", "string", optional=True),
    4: Field("labelSelector", "message", LABEL_SELECTOR, optional=True),
    5: Field("minDomains", "int", optional=True),
    6: Field("nodeAffinityPolicy", "string", optional=True),
    7: Field("nodeTaintsPolicy", "string", optional=True),
    8: Field("matchLabelKeys", "string", repeated=True),
}

POD_OS: Message = {  # PodOS
    1: Field("name", "string", optional=True),
}

POD_SCHEDULING_GATE: Message = {  # PodSchedulingGate
    1: Field("name", "string", optional=True),
}

POD_RESOURCE_CLAIM: Message = {  # PodResourceClaim
    1: Field("name", "string", optional=True),
    3: Field("resourceClaimName", "string", optional=True),
    4: Field("resourceClaimTemplateName", "string", optional=True),
}

POD_SPEC: Message = {  # PodSpec
    1: Field("volumes", "message", VOLUME, repeated=True),
    20: Field("initContainers", "message", CONTAINER, repeated=True),
    2: Field("containers", "message", CONTAINER, repeated=True),
    34: Field("ephemeralContainers", "message", EPHEMERAL_CONTAINER, repeated=True),
    3: Field("restartPolicy", "string"),
    4: Field("terminationGracePeriodSeconds", "int", optional=True),
    5: Field("activeDeadlineSeconds", "int", optional=True),
    6: Field("dnsPolicy", "string"),
    7: Field("nodeSelector", "map"),
    8: Field("serviceAccountName", "string"),
    9: Field("serviceAccount", "string"),
    21: Field("automountServiceAccountToken", "bool", optional=True),
    10: Field("nodeName", "string"),
    11: Field("hostNetwork", "bool"),
    12: Field("hostPID", "bool"),
    13: Field("hostIPC", "bool"),
    27: Field("shareProcessNamespace", "bool", optional=True),
    14: Field("securityContext", "message", POD_SECURITY_CONTEXT, optional=True),
    15: Field("imagePullSecrets", "message", LOCAL_OBJECT_REFERENCE, repeated=True),
    16: Field("hostname", "string"),
    17: Field("subdomain", "string"),
    18: Field("affinity", "message", AFFINITY, optional=True),
    19: Field("schedulerName", "string"),
    22: Field("tolerations", "message", TOLERATION, repeated=True),
    23: Field("hostAliases", "message", HOST_ALIAS, repeated=True),
    24: Field("priorityClassName", "string"),
    25: Field("priority", "int", optional=True),
    26: Field("dnsConfig", "message", POD_DNS_CONFIG, optional=True),
    28: Field("readinessGates", "message", POD_READINESS_GATE, repeated=True),
    29: Field("runtimeClassName", "string", optional=True),
    30: Field("enableServiceLinks", "bool", optional=True),
    31: Field("preemptionPolicy", "string", optional=True),
    32: Field("overhead", "map", value="quantity"),
    33: Field("topologySpreadConstraints", "message", TOPOLOGY_SPREAD_CONSTRAINT, repeated=True),
    35: Field("setHostnameAsFQDN", "bool", optional=True),
    36: Field("os", "message", POD_OS, optional=True),
    37: Field("hostUsers", "bool", optional=True),
    38: Field("schedulingGates", "message", POD_SCHEDULING_GATE, repeated=True),
    39: Field("resourceClaims", "message", POD_RESOURCE_CLAIM, repeated=True),
    40: Field("resources", "message", RESOURCE_REQUIREMENTS, optional=True),
}

# The conditions of one layout in generated.proto, one table each.
PROBED_CONDITION: Message = {  # PodCondition, PersistentVolumeClaimCondition, JobCondition
    1: Field("type", "string", optional=True),
    2: Field("status", "string", optional=True),
    3: Field("lastProbeTime", "time"),
    4: Field("lastTransitionTime", "time"),
    5: Field("reason", "string"),
    6: Field("message", "string"),
}

WORKLOAD_CONDITION: Message = {  # DaemonSetCondition, ReplicaSetCondition, ReplicationControllerCondition, StatefulSetCondition
    1: Field("type", "string", optional=True),
    2: Field("status", "string", optional=True),
    3: Field("lastTransitionTime", "time"),
    4: Field("reason", "string"),
    5: Field("message", "string"),
}

HOST_IP: Message = {  # HostIP
    1: Field("ip", "string", optional=True),
}

POD_IP: Message = {  # PodIP
    1: Field("ip", "string", optional=True),
}

CONTAINER_STATE_WAITING: Message = {  # ContainerStateWaiting
    1: Field("reason", "string"),
    2: Field("message", "string"),
}

CONTAINER_STATE_RUNNING: Message = {  # ContainerStateRunning
    1: Field("startedAt", "time"),
}

CONTAINER_STATE_TERMINATED: Message = {  # ContainerStateTerminated
    1: Field("exitCode", "int", optional=True),
    2: Field("signal", "int"),
    3: Field("reason", "string"),
    4: Field("message", "string"),
    5: Field("startedAt", "time"),
    6: Field("finishedAt", "time"),
    7: Field("containerID", "string"),
}

CONTAINER_STATE: Message = {  # ContainerState
    1: Field("waiting", "message", CONTAINER_STATE_WAITING, optional=True),
    2: Field("running", "message", CONTAINER_STATE_RUNNING, optional=True),
    3: Field("terminated", "message", CONTAINER_STATE_TERMINATED, optional=True),
}

VOLUME_MOUNT_STATUS: Message = {  # VolumeMountStatus
    1: Field("name", "string", optional=True),
    2: Field("mountPath", "string", optional=True),
    3: Field("readOnly", "bool"),
    4: Field("recursiveReadOnly", "string", optional=True),
}

LINUX_CONTAINER_USER: Message = {  # LinuxContainerUser
    1: Field("uid", "int", optional=True),
    2: Field("gid", "int", optional=True),
    3: Field("supplementalGroups", "int", repeated=True),
}

CONTAINER_USER: Message = {  # ContainerUser
    1: Field("linux", "message", LINUX_CONTAINER_USER, optional=True),
}

RESOURCE_HEALTH: Message = {  # ResourceHealth
    1: Field("resourceID", "string", optional=True),
    2: Field("health", "string"),
}

RESOURCE_STATUS: Message = {  # ResourceStatus
    1: Field("name", "string", optional=True),
    2: Field("resources", "message", RESOURCE_HEALTH, repeated=True),
}

CONTAINER_STATUS: Message = {  # ContainerStatus
    1: Field("name", "string", optional=True),
    2: Field("state", "message", CONTAINER_STATE),
    3: Field("lastState", "message", CONTAINER_STATE),
    4: Field("ready", "bool", optional=True),
    5: Field("restartCount", "int", optional=True),
    6: Field("image", "string", optional=True),
    7: Field("imageID", "string", optional=True),
    8: Field("containerID", "string"),
    9: Field("started", "bool", optional=True),
    10: Field("allocatedResources", "map", value="quantity"),
    11: Field("resources", "message", RESOURCE_REQUIREMENTS, optional=True),
    12: Field("volumeMounts", "message", VOLUME_MOUNT_STATUS, repeated=True),
    13: Field("user", "message", CONTAINER_USER, optional=True),
    14: Field("allocatedResourcesStatus", "message", RESOURCE_STATUS, repeated=True),
}

POD_RESOURCE_CLAIM_STATUS: Message = {  # PodResourceClaimStatus
    1: Field("name", "string", optional=True),
    2: Field("resourceClaimName", "string", optional=True),
}

POD_STATUS: Message = {  # PodStatus
    1: Field("phase", "string"),
    2: Field("conditions", "message", PROBED_CONDITION, repeated=True),
    3: Field("message", "string"),
    4: Field("reason", "string"),
    11: Field("nominatedNodeName", "string"),
    5: Field("hostIP", "string"),
    16: Field("hostIPs", "message", HOST_IP, repeated=True),
    6: Field("podIP", "string"),
    12: Field("podIPs", "message", POD_IP, repeated=True),
    7: Field("startTime", "time", optional=True),
    10: Field("initContainerStatuses", "message", CONTAINER_STATUS, repeated=True),
    8: Field("containerStatuses", "message", CONTAINER_STATUS, repeated=True),
    9: Field("qosClass", "string"),
    13: Field("ephemeralContainerStatuses", "message", CONTAINER_STATUS, repeated=True),
    14: Field("resize", "string"),
    15: Field("resourceClaimStatuses", "message", POD_RESOURCE_CLAIM_STATUS, repeated=True),
}

POD_TEMPLATE_SPEC: Message = {  # PodTemplateSpec
    1: Field("metadata", "message", OBJECT_META),
    2: Field("spec", "message", POD_SPEC),
}

MODIFY_VOLUME_STATUS: Message = {  # ModifyVolumeStatus
    1: Field("targetVolumeAttributesClassName", "string"),
    2: Field("status", "string", optional=True),
}

PERSISTENT_VOLUME_CLAIM_STATUS: Message = {  # PersistentVolumeClaimStatus
    1: Field("phase", "string"),
    2: Field("accessModes", "string", repeated=True),
    3: Field("capacity", "map", value="quantity"),
    4: Field("conditions", "message", PROBED_CONDITION, repeated=True),
    5: Field("allocatedResources", "map", value="quantity"),
    7: Field("allocatedResourceStatuses", "map"),
    8: Field("currentVolumeAttributesClassName", "string", optional=True),
    9: Field("modifyVolumeStatus", "message", MODIFY_VOLUME_STATUS, optional=True),
}

PERSISTENT_VOLUME_CLAIM: Message = {  # PersistentVolumeClaim
    1: Field("metadata", "message", OBJECT_META),
    2: Field("spec", "message", PERSISTENT_VOLUME_CLAIM_SPEC),
    3: Field("status", "message", PERSISTENT_VOLUME_CLAIM_STATUS),
}
