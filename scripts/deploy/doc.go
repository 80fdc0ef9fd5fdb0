// Package deploy holds the tests of the deployment files at the repository
// root: docker-compose.yml, render.yaml, .env.example and the Dockerfiles in
// docker/. There is no Docker engine on our machines, so these tests prove
// what they can without one: the files parse as Compose and Render read
// them, they match the contract (services, ports, health checks, start
// order), every variable the binaries read is set, images are pinned, and
// each Dockerfile builds a package that exists from the files it copies.
package deploy
