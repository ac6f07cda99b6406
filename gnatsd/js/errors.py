"""JetStream API errors: Go's ApiError and the table of `server/jetstream_errors_generated.go`
as nats-server 2.9.10 has it (codes and texts are what clients match on), plus the entries of
newer servers for what gnatsd has of 2.10 and 2.11: the consumer errors of filter_subjects,
metadata and the create/update actions, and the stream features (mirror/source transforms,
subject transforms, first_seq, per-message TTL), marked.

`api_error("StreamNotFound")` is Go's NewJSStreamNotFoundError(); the `{err}`, `{seq}`, `{id}`...
placeholders of a description take keyword arguments. `unless(err)`: Go's Unless option, an
ApiError passed as the cause is returned as it is.
"""
from __future__ import annotations

# Go: ApiErrors, keyed by the ErrorIdentifier name without its "JS" prefix and "Err" suffix.
API_ERRORS = {
    "AccountResourcesExceeded": (400, 10002, "resource limits exceeded for account"),
    "BadRequest": (400, 10003, "bad request"),
    "ClusterIncomplete": (503, 10004, "incomplete results"),
    "ClusterNoPeersErrF": (400, 10005, "{err}"),
    "ClusterNotActive": (500, 10006, "JetStream not in clustered mode"),
    "ClusterNotAssigned": (500, 10007, "JetStream cluster not assigned to this server"),
    "ClusterNotAvail": (503, 10008, "JetStream system temporarily unavailable"),
    "ClusterNotLeader": (500, 10009, "JetStream cluster can not handle request"),
    "ClusterPeerNotMember": (400, 10040, "peer not a member"),
    "ClusterRequired": (503, 10010, "JetStream clustering support required"),
    "ClusterServerNotMember": (400, 10044, "server is not a member of the cluster"),
    "ClusterTags": (400, 10011, "tags placement not supported for operation"),
    "ClusterUnSupportFeature": (503, 10036, "not currently supported in clustered mode"),
    "ConsumerBadDurableName": (400, 10103, "durable name can not contain '.', '*', '>'"),
    "ConsumerAlreadyExists": (400, 10148, "consumer already exists"),  # 2.10
    "ConsumerConfigRequired": (400, 10078, "consumer config required"),
    "ConsumerCreateDurableAndNameMismatch": (400, 10132, "Consumer Durable and Name have to be equal if both are provided"),
    "ConsumerCreateErrF": (500, 10012, "{err}"),
    "ConsumerCreateFilterSubjectMismatch": (400, 10131, "Consumer create request did not match filtered subject from create subject"),
    "ConsumerDeliverCycle": (400, 10081, "consumer deliver subject forms a cycle"),
    "ConsumerDeliverToWildcards": (400, 10079, "consumer deliver subject has wildcards"),
    "ConsumerDescriptionTooLongErrF": (400, 10107, "consumer description is too long, maximum allowed is {max}"),
    "ConsumerDirectRequiresEphemeral": (400, 10091, "consumer direct requires an ephemeral consumer"),
    "ConsumerDirectRequiresPush": (400, 10090, "consumer direct requires a push based consumer"),
    "ConsumerDoesNotExist": (400, 10149, "consumer does not exist"),  # 2.10
    "ConsumerDuplicateFilterSubjects": (400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified"),  # 2.10
    "ConsumerDurableNameNotInSubject": (400, 10016, "consumer expected to be durable but no durable name set in subject"),
    "ConsumerDurableNameNotMatchSubject": (400, 10017, "consumer name in subject does not match durable name in request"),
    "ConsumerDurableNameNotSet": (400, 10018, "consumer expected to be durable but a durable name was not set"),
    "ConsumerEmptyFilter": (400, 10139, "consumer filter in FilterSubjects cannot be empty"),  # 2.10
    "ConsumerEphemeralWithDurableInSubject": (400, 10019, "consumer expected to be ephemeral but detected a durable name set in subject"),
    "ConsumerEphemeralWithDurableName": (400, 10020, "consumer expected to be ephemeral but a durable name was set in request"),
    "ConsumerExistingActive": (400, 10105, "consumer already exists and is still active"),
    "ConsumerFCRequiresPush": (400, 10089, "consumer flow control requires a push based consumer"),
    "ConsumerFilterNotSubset": (400, 10093, "consumer filter subject is not a valid subset of the interest subjects"),
    "ConsumerHBRequiresPush": (400, 10088, "consumer idle heartbeat requires a push based consumer"),
    "ConsumerInvalidDeliverSubject": (400, 10112, "invalid push consumer deliver subject"),
    "ConsumerInvalidPolicyErrF": (400, 10094, "{err}"),
    "ConsumerInvalidSamplingErrF": (400, 10095, "failed to parse consumer sampling configuration: {err}"),
    "ConsumerMaxDeliverBackoff": (400, 10116, "max deliver is required to be > length of backoff values"),
    "ConsumerMaxPendingAckExcessErrF": (400, 10121, "consumer max ack pending exceeds system limit of {limit}"),
    "ConsumerMaxPendingAckPolicyRequired": (400, 10082, "consumer requires ack policy for max ack pending"),
    "ConsumerMetadataLengthErrF": (400, 10135, "consumer metadata exceeds maximum size of {limit}"),  # 2.10
    "ConsumerMultipleFiltersNotAllowed": (400, 10137, "consumer with multiple subject filters cannot use subject based API"),  # 2.10
    "ConsumerMaxRequestBatchExceededF": (400, 10125, "consumer max request batch exceeds server limit of {limit}"),
    "ConsumerMaxRequestBatchNegative": (400, 10114, "consumer max request batch needs to be > 0"),
    "ConsumerMaxRequestExpiresToSmall": (400, 10115, "consumer max request expires needs to be >= 1ms"),
    "ConsumerMaxWaitingNegative": (400, 10087, "consumer max waiting needs to be positive"),
    "ConsumerNameContainsPathSeparators": (400, 10127, "Consumer name can not contain path separators"),
    "ConsumerNameExist": (400, 10013, "consumer name already in use"),
    "ConsumerNameTooLongErrF": (400, 10102, "consumer name is too long, maximum allowed is {max}"),
    "ConsumerNotFound": (404, 10014, "consumer not found"),
    "ConsumerOffline": (500, 10119, "consumer is offline"),
    "ConsumerOnMapped": (400, 10092, "consumer direct on a mapped consumer"),
    "ConsumerOverlappingSubjectFilters": (400, 10138, "consumer subject filters cannot overlap"),  # 2.10
    "ConsumerPullNotDurable": (400, 10085, "consumer in pull mode requires a durable name"),
    "ConsumerPullRequiresAck": (400, 10084, "consumer in pull mode requires ack policy"),
    "ConsumerPullWithRateLimit": (400, 10086, "consumer in pull mode can not have rate limit set"),
    "ConsumerPushMaxWaiting": (400, 10080, "consumer in push mode can not set max waiting"),
    "ConsumerReplacementWithDifferentName": (400, 10106, "consumer replacement durable config not the same"),
    "ConsumerReplicasExceedsStream": (400, 10126, "consumer config replica count exceeds parent stream"),
    "ConsumerSmallHeartbeat": (400, 10083, "consumer idle heartbeat needs to be >= 100ms"),
    "ConsumerStoreFailedErrF": (500, 10104, "error creating store for consumer: {err}"),
    "ConsumerWQConsumerNotDeliverAll": (400, 10101, "consumer must be deliver all on workqueue stream"),
    "ConsumerWQConsumerNotUnique": (400, 10100, "filtered consumer not unique on workqueue stream"),
    "ConsumerWQMultipleUnfiltered": (400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"),
    "ConsumerWQRequiresExplicitAck": (400, 10098, "workqueue stream requires explicit ack"),
    "ConsumerWithFlowControlNeedsHeartbeats": (400, 10108, "consumer with flow control also needs heartbeats"),
    "InsufficientResources": (503, 10023, "insufficient resources"),
    "InvalidJSON": (400, 10025, "invalid JSON"),
    "MaximumConsumersLimit": (400, 10026, "maximum consumers limit reached"),
    "MaximumStreamsLimit": (400, 10027, "maximum number of streams reached"),
    "MemoryResourcesExceeded": (500, 10028, "insufficient memory resources available"),
    "MirrorConsumerSetupFailedErrF": (500, 10029, "{err}"),
    "MirrorMaxMessageSizeTooBig": (400, 10030, "stream mirror must have max message size >= source"),
    "MirrorWithSources": (400, 10031, "stream mirrors can not also contain other sources"),
    "MirrorWithStartSeqAndTime": (400, 10032, "stream mirrors can not have both start seq and start time configured"),
    "MirrorWithSubjectFilters": (400, 10033, "stream mirrors can not contain filtered subjects"),
    "MirrorWithSubjects": (400, 10034, "stream mirrors can not contain subjects"),
    "NoAccount": (503, 10035, "account not found"),
    "NoLimits": (400, 10120, "no JetStream default or applicable tiered limit present"),
    "NoMessageFound": (404, 10037, "no message found"),
    "NotEmptyRequest": (400, 10038, "expected an empty request payload"),
    "NotEnabled": (503, 10076, "JetStream not enabled"),
    "NotEnabledForAccount": (503, 10039, "JetStream not enabled for account"),
    "PeerRemap": (503, 10075, "peer remap failed"),
    "RaftGeneralErrF": (500, 10041, "{err}"),
    "ReplicasCountCannotBeNegative": (400, 10133, "replicas count cannot be negative"),
    "RestoreSubscribeFailedErrF": (500, 10042, "JetStream unable to subscribe to restore snapshot {subject}: {err}"),
    "SequenceNotFoundErrF": (400, 10043, "sequence {seq} not found"),
    "SnapshotDeliverSubjectInvalid": (400, 10015, "deliver subject not valid"),
    "SourceConsumerSetupFailedErrF": (500, 10045, "{err}"),
    "SourceMaxMessageSizeTooBig": (400, 10046, "stream source must have max message size >= target"),
    "StorageResourcesExceeded": (500, 10047, "insufficient storage resources available"),
    "StreamAssignmentErrF": (500, 10048, "{err}"),
    "StreamCreateErrF": (500, 10049, "{err}"),
    "StreamDeleteErrF": (500, 10050, "{err}"),
    "StreamExternalApiOverlapErrF": (400, 10021, "stream external api prefix {prefix} must not overlap with {subject}"),
    "StreamExternalDelPrefixOverlapsErrF": (400, 10022, "stream external delivery prefix {prefix} overlaps with stream subject {subject}"),
    "StreamGeneralErrorF": (500, 10051, "{err}"),
    "StreamHeaderExceedsMaximum": (400, 10097, "header size exceeds maximum allowed of 64k"),
    "StreamInfoMaxSubjects": (500, 10117, "subject details would exceed maximum allowed"),
    "StreamInvalidConfigF": (500, 10052, "{err}"),
    "StreamInvalid": (500, 10096, "stream not valid"),
    "StreamInvalidExternalDeliverySubjErrF": (400, 10024, "stream external delivery prefix {prefix} must not contain wildcards"),
    "StreamLimitsErrF": (500, 10053, "{err}"),
    "StreamMaxBytesRequired": (400, 10113, "account requires a stream config to have max bytes set"),
    "StreamMaxStreamBytesExceeded": (400, 10122, "stream max bytes exceeds account limit max stream bytes"),
    "StreamMessageExceedsMaximum": (400, 10054, "message size exceeds maximum allowed"),
    "StreamMirrorNotUpdatable": (400, 10055, "stream mirror configuration can not be updated"),
    "StreamMismatch": (400, 10056, "stream name in subject does not match request"),
    "StreamMoveAndScale": (400, 10123, "can not move and scale a stream in a single update"),
    "StreamMoveInProgressF": (400, 10124, "stream move already in progress: {msg}"),
    "StreamMoveNotInProgress": (400, 10129, "stream move not in progress"),
    "StreamMsgDeleteFailedF": (500, 10057, "{err}"),
    "StreamNameContainsPathSeparators": (400, 10128, "Stream name can not contain path separators"),
    "StreamNameExist": (400, 10058, "stream name already in use with a different configuration"),
    "StreamNameExistRestoreFailed": (400, 10130, "stream name already in use, cannot restore"),
    "StreamNotFound": (404, 10059, "stream not found"),
    "StreamNotMatch": (400, 10060, "expected stream does not match"),
    "StreamOffline": (500, 10118, "stream is offline"),
    "StreamPurgeFailedF": (500, 10110, "{err}"),
    "StreamReplicasNotSupported": (500, 10074, "replicas > 1 not supported in non-clustered mode"),
    "StreamReplicasNotUpdatable": (400, 10061, "Replicas configuration can not be updated"),
    "StreamRestoreErrF": (500, 10062, "restore failed: {err}"),
    "StreamRollupFailedF": (500, 10111, "{err}"),
    "StreamSealed": (400, 10109, "invalid operation on sealed stream"),
    "StreamSequenceNotMatch": (503, 10063, "expected stream sequence does not match"),
    "StreamSnapshotErrF": (500, 10064, "snapshot failed: {err}"),
    "StreamStoreFailedF": (503, 10077, "{err}"),
    "StreamSubjectOverlap": (400, 10065, "subjects overlap with an existing stream"),
    "StreamTemplateCreateErrF": (500, 10066, "{err}"),
    "StreamTemplateDeleteErrF": (500, 10067, "{err}"),
    "StreamTemplateNotFound": (404, 10068, "template not found"),
    "StreamUpdateErrF": (500, 10069, "{err}"),
    "StreamWrongLastMsgIDErrF": (400, 10070, "wrong last msg ID: {id}"),
    "StreamWrongLastSequenceErrF": (400, 10071, "wrong last sequence: {seq}"),
    "TempStorageFailed": (500, 10072, "JetStream unable to open temp storage for restore"),
    "TemplateNameNotMatchSubject": (400, 10073, "template name in subject does not match request"),
    # Newer nats-server (2.10, 2.11), for the features gnatsd takes from them.
    "MessageTTLDisabled": (400, 10166, "per-message TTL is disabled"),
    "MessageTTLInvalid": (400, 10165, "invalid per-message TTL"),
    "MirrorInvalidStreamName": (400, 10142, "mirrored stream name is invalid"),
    "MirrorInvalidSubjectFilter": (400, 10151, "mirror transform source: {err}"),
    "MirrorInvalidTransformDestination": (400, 10154, "mirror transform: {err}"),
    "MirrorMultipleFiltersNotAllowed": (400, 10150, "mirror with multiple subject transforms cannot also have a single subject filter"),
    "MirrorOverlappingSubjectFilters": (400, 10152, "mirror subject filters can not overlap"),
    "MirrorWithFirstSeq": (400, 10143, "stream mirrors can not have first sequence configured"),
    "SourceDuplicateDetected": (400, 10140, "duplicate source configuration detected"),
    "SourceInvalidStreamName": (400, 10141, "sourced stream name is invalid"),
    "SourceInvalidSubjectFilter": (400, 10145, "source transform source: {err}"),
    "SourceInvalidTransformDestination": (400, 10146, "source transform: {err}"),
    "SourceMultipleFiltersNotAllowed": (400, 10144, "source with multiple subject transforms cannot also have a single subject filter"),
    "SourceOverlappingSubjectFilters": (400, 10147, "source filters can not overlap"),
    "StreamTransformInvalidDestination": (400, 10156, "stream transform: {err}"),
    "StreamTransformInvalidSource": (400, 10155, "stream transform source: {err}"),
}


class ApiError(Exception):
    """Go: ApiError. `to_dict()` is its JSON: code, err_code (when set), description."""

    def __init__(self, code, err_code, description):
        super().__init__(description)
        self.code = code
        self.err_code = err_code
        self.description = description

    def to_dict(self):
        d = {"code": self.code}
        if self.err_code:
            d["err_code"] = self.err_code
        if self.description:
            d["description"] = self.description
        return d


def api_error(name, err=None, **kw):
    """Go: New<name>Error. With `err` an ApiError (Go's Unless), that error instead; other
    placeholders take `kw`, `{err}` takes `str(err)`."""
    if isinstance(err, ApiError):
        return err
    code, err_code, desc = API_ERRORS[name]
    if err is not None:
        desc = desc.replace("{err}", str(err))
    for k, v in kw.items():
        desc = desc.replace("{" + k + "}", str(v))
    return ApiError(code, err_code, desc)
