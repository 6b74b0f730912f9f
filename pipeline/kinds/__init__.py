"""The subject kinds, one package each (pipeline/kinds/<kind>/), found at run time by the registry
(pipeline.registry): each package's KIND declares what the shared modules and rules need of it."""
