package controllers

// Permissions the operator needs, rendered into config/rbac/role.yaml by controller-gen:
// the Roster kinds, Secrets read by name only (credentials: never listed or watched,
// which would hand every Secret's data to the operator), ConfigMaps (HR exports read,
// the inbound SCIM groups of a DirectorySync written: config/rbac/configmap_policy.yaml
// limits writes to the ConfigMaps Roster owns), events, and the Roles and RoleBindings
// that let an AccessRequest's approvers decide on it (one request each, by name: the
// operator holds the approve verb it grants, so it needs neither bind nor escalate).
// Nothing else, and no wildcards.
//
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users;roles;appassignments;appconnections;directorysyncs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/status;roles/status;appassignments/status;appconnections/status;directorysyncs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/finalizers;roles/finalizers;appassignments/finalizers;appconnections/finalizers;directorysyncs/finalizers;accessrequests/finalizers,verbs=update
// +kubebuilder:rbac:groups=identity.roster.dev,resources=accessrequests,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=identity.roster.dev,resources=notifiers,verbs=get;list;watch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=directorysyncpreviews,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=identity.roster.dev,resources=directorysyncpreviews/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=notifiers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=accessrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=accessrequests/approval,verbs=approve
// +kubebuilder:rbac:groups=identity.roster.dev,resources=appassignments,verbs=deletecollection
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
