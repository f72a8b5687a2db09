package v1alpha1

// Condition types. Every Roster object carries Ready from its first reconcile. Stalled and
// Reconciling are abnormal-true conditions: present and True only while they hold, which is
// what kstatus and Argo CD read.
const (
	// ConditionReady is True when the object's declared state is in effect.
	ConditionReady = "Ready"
	// ConditionStalled is True only while a human must act (bad credentials, invalid
	// configuration, a blocked plan); retrying alone will not help.
	ConditionStalled = "Stalled"
	// ConditionReconciling is True while Roster is converging the object.
	ConditionReconciling = "Reconciling"
)

// Condition reasons, in UpperCamelCase as the API conventions ask.
const (
	// ReasonReconciled: the object is converged.
	ReasonReconciled = "Reconciled"
	// ReasonProgressing: work is under way and will finish without help.
	ReasonProgressing = "Progressing"
	// ReasonInvalidSpec: the spec passed schema validation but cannot be used
	// (for example a CEL expression that does not compile).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretNotFound: a referenced Secret or key does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonCredentialsRejected: the app or directory refused the credentials.
	ReasonCredentialsRejected = "CredentialsRejected"
	// ReasonConnectorError: the app or directory answered with an error; the message
	// carries it.
	ReasonConnectorError = "ConnectorError"
	// ReasonRateLimited: the app asked Roster to slow down; work resumes after the
	// delay it gave.
	ReasonRateLimited = "RateLimited"
	// ReasonSafetyThresholdExceeded: a plan would deprovision (or a sync would suspend
	// or delete) more than the safety threshold allows; an admin must approve it.
	ReasonSafetyThresholdExceeded = "SafetyThresholdExceeded"
	// ReasonPlanOnly: the AppConnection is in Plan mode; the plan is published, not applied.
	ReasonPlanOnly = "PlanOnly"
	// ReasonPaused: reconciliation is paused by annotation.
	ReasonPaused = "Paused"
	// ReasonSubjectNotFound: the User or Role an AppAssignment names does not exist.
	ReasonSubjectNotFound = "SubjectNotFound"
	// ReasonAppNotFound: the AppConnection an assignment or grant names does not exist.
	ReasonAppNotFound = "AppNotFound"
	// ReasonNotYetActive: a start time (activeFrom, validFrom) is still in the future.
	ReasonNotYetActive = "NotYetActive"
	// ReasonExpired: an end time (activeUntil, validUntil) has passed.
	ReasonExpired = "Expired"
	// ReasonSuspended: the User is suspended.
	ReasonSuspended = "Suspended"
	// ReasonDeprovisioning: accounts are being removed before the object goes away.
	ReasonDeprovisioning = "Deprovisioning"
	// ReasonDuplicateUserName: another User in the namespace has the same userName
	// (compared case-insensitively).
	ReasonDuplicateUserName = "DuplicateUserName"
	// ReasonInternalError: Roster's own work for the object failed (a panic, recovered);
	// it starts again after a backoff, and the operator's log has the detail.
	ReasonInternalError = "InternalError"
	// ReasonProvisioningFailed: some accounts could not be provisioned; the message
	// and status list which.
	ReasonProvisioningFailed = "ProvisioningFailed"
	// ReasonAwaitingApproval: an AccessRequest waits for its approvers; the message
	// names them and gives the command.
	ReasonAwaitingApproval = "AwaitingApproval"
	// ReasonGranting: an approved AccessRequest's accounts are being provisioned.
	ReasonGranting = "Granting"
	// ReasonDeliveryFailing: a Notifier's channel does not take its messages.
	ReasonDeliveryFailing = "DeliveryFailing"
	// ReasonShardNotRunning: an AppConnection or DirectorySync is labelled with a shard
	// that no replica leads; nothing provisions or syncs it until one does.
	ReasonShardNotRunning = "ShardNotRunning"
)

// Event reasons, beside the condition reasons: what Roster records in Events.
const (
	EventProvisioned      = "Provisioned"      // an account was created or reactivated
	EventDeprovisioned    = "Deprovisioned"    // an account was deactivated or deleted
	EventAdopted          = "Adopted"          // an existing account was linked by the matching key
	EventOrphaned         = "Orphaned"         // an account, or a DirectorySync's Users, were let go as they are
	EventDeactivated      = "Deactivated"      // an account no User holds was deactivated
	EventDeleted          = "Deleted"          // a DirectorySync's Users were deleted with it
	EventDrifting         = "Drifting"         // the app does not keep attributes Roster sent
	EventPlanBlocked      = "PlanBlocked"      // deprovisions are held by the safety threshold
	EventPlanApproved     = "PlanApproved"     // a held plan was applied, as approved by the person named
	EventAccountsOrphaned = "AccountsOrphaned" // a User was deleted with its accounts left as they are
	EventSourceProblems   = "SourceProblems"   // source records a DirectorySync could not take as they are
	EventSuspensionHeld   = "SuspensionHeld"   // a person's suspension holds against the source
	EventFailedLogins     = "FailedLogins"     // requests without a valid token reached an inbound SCIM endpoint
)

// Annotations an admin sets on Roster objects.
const (
	// AnnotationPaused, set to "true" on an AppConnection, stops Roster from writing to
	// its app until it is removed.
	AnnotationPaused = "identity.roster.dev/paused"
	// AnnotationApprovePlan, set to the id of a plan blocked by the safety threshold
	// (status.plan.id), lets that one plan be applied.
	AnnotationApprovePlan = "identity.roster.dev/approve-plan"
	// AnnotationPlanApprovedBy is set with AnnotationApprovePlan to the approver's own
	// Kubernetes user name; the plan-approvals admission policy refuses an approval by
	// anyone else, or by someone without the approve verb on <kind>/approval.
	AnnotationPlanApprovedBy = "identity.roster.dev/plan-approved-by"
	// ApproveCommand is how a message tells a person to approve a held plan: the
	// annotations, the approver's own user name filled in by kubectl.
	ApproveCommand = "kubectl annotate %s %s " + AnnotationApprovePlan + "=%s " + AnnotationPlanApprovedBy + `="$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')"`
	// DecideCommand is how a message tells a person to decide on an AccessRequest
	// (namespace, name, decision): a decision appended under their own user name, filled
	// in by kubectl.
	DecideCommand = `kubectl patch accessrequest -n %s %s --type=json -p '[{"op":"add","path":"/spec/decisions/-","value":{"decision":"%s","by":"'"$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')"'"}}]'`
	// AnnotationResync, set to a new value (a timestamp is customary), makes an
	// AppConnection list its app and a DirectorySync read its source in full now,
	// instead of at the next interval.
	AnnotationResync = "identity.roster.dev/resync"
	// AnnotationOrphanAccounts, set to "true" on a User being deleted, lets it go without
	// deprovisioning its accounts: for a User whose app is unreachable or paused. The
	// accounts stay in the apps as they are, and an Event records it.
	AnnotationOrphanAccounts = "identity.roster.dev/orphan-accounts"
	// LabelShard on an AppConnection or a DirectorySync names the shard whose replicas
	// run its engine or syncer (their --shard flag); without it, the replicas started
	// without --shard do.
	LabelShard = "identity.roster.dev/shard"
)

// Finalizer is the finalizer Roster puts on objects whose removal must first
// deprovision accounts.
const Finalizer = "identity.roster.dev/deprovision"

// ShardFinalizerPrefix, followed by a shard's name, is the finalizer a shard's replicas
// put on the Users of a namespace where they run apps, so that a User goes only once
// those apps have deprovisioned its accounts too.
const ShardFinalizerPrefix = "deprovision.identity.roster.dev/"
