"""Article paths: module_host.loader, module_host.abi, module_host.fallback."""
