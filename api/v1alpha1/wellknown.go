package v1alpha1

// Labels, annotations and finalizers the operator puts on objects.
const (
	// LabelSource on a WindowsInstance says which inventory created it;
	// absent on instances users create.
	LabelSource = "wmco.io/source"
	// SourceConfigMap marks instances of the windows-instances ConfigMap.
	SourceConfigMap = "configmap"
	// SourceMachine marks instances of Windows Machines.
	SourceMachine = "machine"

	// AnnotationMachine on a WindowsInstance names its Machine
	// ("namespace/name").
	AnnotationMachine = "wmco.io/machine"

	// LabelInstance on a Node, a bootstrap token Secret or other objects
	// names the WindowsInstance they belong to.
	LabelInstance = "wmco.io/instance"

	// AnnotationPayloadVersion on a Node is the payload version its host
	// runs.
	AnnotationPayloadVersion = "wmco.io/payload-version"

	// AnnotationCordoned on a Node says the operator cordoned it, to drain
	// it (a rename, an upgrade, the instance's deletion): the operator
	// undoes only a cordon it made. Set and removed with the cordon.
	AnnotationCordoned = "wmco.io/cordoned"

	// Finalizer holds a WindowsInstance until its host is drained and
	// cleaned and its Node deleted.
	Finalizer = "wmco.io/deconfigure"

	// AnnotationAbandonHost on a WindowsInstance being deleted (any
	// non-empty value: why) gives its host up if the operator cannot
	// reach it to clean it: the Node is drained and deleted and the
	// bootstrap credentials revoked, and what the operator installed
	// stays on the host. The Machine controller sets it on the instance
	// of a Machine being deleted whose host has not let the operator in
	// for the access timeout, as the VM is removed anyway.
	AnnotationAbandonHost = "wmco.io/abandon-host"

	// LabelOSID is WMCO's label marking Windows nodes.
	LabelOSID = "node.openshift.io/os_id"
	// LabelWorkerRole is the worker role label.
	LabelWorkerRole = "node-role.kubernetes.io/worker"

	// InventoryConfigMapName is the host inventory in the operator's
	// namespace.
	InventoryConfigMapName = "windows-instances"

	// MachineOSIDLabel marks Windows Machines.
	MachineOSIDLabel = "machine.openshift.io/os-id"
	// MachineIgnoreLabel on a Machine ("true") keeps the operator away.
	MachineIgnoreLabel = "windowsmachineconfig.openshift.io/ignore"
)
