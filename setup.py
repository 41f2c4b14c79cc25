from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('ipswap_mm/version.py') as file:
        exec(file.read(), namespace)
    return namespace['__version__']


def requirements(path: str) -> list:
    """The requirement lines of ``path``, comments (whole-line or trailing) left out."""
    with open(path) as file:
        return [line.split('#', 1)[0].strip() for line in file if line.split('#', 1)[0].strip()]


setup(
    name='ipswap_mm',
    version=read_version(),
    description='Intra-class patch swap (IPS) self-distillation for MMSegmentation and MMDetection',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ipswap_mm', 'ipswap_mm.*']),
    python_requires='>=3.9',
    install_requires=requirements('requirements/mmcv.txt') + requirements('requirements/runtime.txt'),
    extras_require=dict(tests=requirements('requirements/tests.txt')),
    license='Apache-2.0',
)
