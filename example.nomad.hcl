# A CI job whose container can be entered over SSH.
#
#   nomad job run -var "authorized_key=$(cat ~/.ssh/id_ed25519.pub)" example.nomad.hcl
#
# Once the task runs, its events show the command to log in:
#
#   nomad alloc status <alloc id>   # Driver event: ssh -p 64535 root@203.0.113.10
#
# The job is a build that waits for a debugging user: it runs until
# someone logs in and runs `touch /tmp/done`, or until `nomad job stop`.

variable "authorized_key" {
  type        = string
  description = "The OpenSSH public key (one authorized_keys line) of the user who may log in."
}

variable "image" {
  type        = string
  default     = "nomad-driver-sshrerun/busybox:local"
  description = "The job image. The default is the test image that `make images` builds."
}

job "ci-build" {
  datacenters = ["*"]
  type        = "batch"

  group "build" {
    network {
      # The host port comes from the client's dynamic range (64535-65535 in
      # the reference setup), so open that range to SSH users.
      port "ssh" {}
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    # Nomad also places a failed batch job once more on a new allocation,
    # with a new container and a new hold, unless rescheduling is off
    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "build" {
      driver = "sshrerun"

      config {
        image   = var.image
        command = "/bin/sh"
        args    = ["-c", "echo building; while [ ! -e /tmp/done ]; do sleep 1; done; echo finished"]

        ssh {
          port            = "ssh"
          user            = "root"
          authorized_keys = [var.authorized_key]
        }
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
