-- wrk script: POST $export with a FHIR Parameters body (scripts/bench)
wrk.method = "POST"
wrk.body = '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Observation"}]}'
