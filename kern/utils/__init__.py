"""Small helpers under the reference API's paths: `kern.utils.pprint`, `kern.utils.http`."""
