//! cmdb-reconcile library
