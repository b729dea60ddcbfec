from fhir_ns.cli import main

main()
